"""A producer that can never succeed again (a fatal error, e.g. its idempotence state fenced
after a broker restart) is replaced, and the results are produced with the new one.

Regression: in the chaos suite's broker-restart scenario, a sender retried with its broken
idempotent producer every 5 s forever, so its partitions delivered nothing more."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError

from pipeline.delivery.dispatcher import Dispatcher
from pipeline.kafka.producer import Output, ProduceError
from pipeline.settings import Settings


class FakeProducer:
    """:class:`~pipeline.kafka.producer.AsyncProducer`'s interface; a broken one fails every
    record with a fatal error, and ``renewed`` gives the fresh one."""

    def __init__(self, *, broken: bool, fresh: FakeProducer | None = None) -> None:
        self.broken = broken
        self.fresh = fresh
        self.sent: list[bytes | None] = []
        self.renewals = 0

    def send(self, outputs: Sequence[Output]) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.broken:
            fatal = KafkaError(KafkaError._FENCED, "fenced", fatal=True)
            future.set_exception(ProduceError(fatal))
        else:
            self.sent += [o.value for o in outputs]
            future.set_result(None)
        return future

    def renewed(self) -> FakeProducer:
        self.renewals += 1
        assert self.fresh is not None
        return self.fresh


async def _run() -> tuple[bool, FakeProducer, FakeProducer, Any]:
    dispatcher = Dispatcher(Settings(), handler=None)  # type: ignore[arg-type]
    fresh = FakeProducer(broken=False)
    broken = FakeProducer(broken=True, fresh=fresh)
    dispatcher._producer = broken  # type: ignore[assignment]
    ok = await asyncio.wait_for(dispatcher._produce([Output("attempts", b"k", b"v")]), 5)
    return ok, broken, fresh, dispatcher._producer


def test_a_broken_producer_is_replaced_and_the_results_produced() -> None:
    ok, broken, fresh, current = asyncio.run(_run())
    assert ok
    assert current is fresh
    assert fresh.sent == [b"v"]
    assert broken.renewals == 1
