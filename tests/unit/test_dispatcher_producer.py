"""A producer that can never succeed again (a fatal error, e.g. its idempotence state fenced
after a broker restart) is replaced, and the results are produced with the new one.

Regression: in the chaos suite's broker-restart scenario, a sender retried with its broken
idempotent producer every 5 s forever, so its partitions delivered nothing more."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from confluent_kafka import KafkaError

from pipeline.delivery.results import Results
from pipeline.kafka.producer import Output, ProduceError


class FakeProducer:
    """:class:`~pipeline.kafka.producer.AsyncProducer`'s interface; a broken one fails every
    record with a fatal error (or a retriable one), and ``renewed`` gives the fresh one."""

    def __init__(self, *, fails: int = 0, fatal: bool = False, fresh: FakeProducer | None = None):
        self.fails, self.fatal, self.fresh = fails, fatal, fresh
        self.sent: list[bytes | None] = []
        self.renewals = 0

    def send(self, outputs: Sequence[Output]) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.fails:
            self.fails -= 1
            error = KafkaError(KafkaError._FENCED, "fenced", fatal=self.fatal)
            future.set_exception(ProduceError(error))
        else:
            self.sent += [o.value for o in outputs]
            future.set_result(None)
        return future

    def renewed(self) -> FakeProducer:
        self.renewals += 1
        assert self.fresh is not None
        return self.fresh

    async def flush(self, _seconds: float) -> int:
        return 0


def _results(producer: FakeProducer) -> Results:
    results = Results(lambda: producer)  # type: ignore[arg-type,return-value]
    results.start()
    return results


def test_a_broken_producer_is_replaced_and_the_results_produced() -> None:
    fresh = FakeProducer()
    broken = FakeProducer(fails=1_000, fatal=True, fresh=fresh)
    results = _results(broken)
    ok = asyncio.run(asyncio.wait_for(results.produce([Output("attempts", b"k", b"v")]), 5))
    assert ok
    assert results.producer is fresh
    assert fresh.sent == [b"v"]
    assert broken.renewals == 1


def test_a_state_written_again_after_a_failure_is_the_state_then() -> None:
    """An ordered queue's write that failed is retried with the queue as it is now, so the
    compacted topic's last value is never an older state."""
    producer = FakeProducer(fails=1)
    state = [b"old"]

    def now() -> list[Output]:
        value = state[0]
        state[0] = b"new"  # changed while the first write was failing
        return [Output("ordering", b"q", value)]

    assert asyncio.run(asyncio.wait_for(_results(producer).produce(now), 5))
    assert producer.sent == [b"new"]


def test_a_stopping_worker_gives_up_and_leaves_the_record_unfinished() -> None:
    results = _results(FakeProducer(fails=1_000))
    results.stopping = True
    assert not asyncio.run(results.produce([Output("attempts", b"k", b"v")]))
