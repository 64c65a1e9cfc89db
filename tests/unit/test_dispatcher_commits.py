"""The sender commits as soon as records finish (at most once per ``commit_interval``), not on
a slow timer: what a SIGKILL makes the next owner redo is about one short interval of work.

Regression: with commits every 1 s from the poll loop, the chaos suite's worker-crash scenario
redelivered 15 % of 2,000 webhooks over 7 SIGKILLs (about one second of work per kill)."""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition
from confluent_kafka import KafkaError, KafkaException

from pipeline.delivery.dispatcher import Dispatcher
from pipeline.delivery.offsets import decode_finished
from pipeline.kafka.producer import Output
from pipeline.settings import Settings


class FakeConsumer:
    """:class:`~pipeline.kafka.consumer.GroupConsumer`'s commit, recorded."""

    def __init__(self) -> None:
        self.commits: list[dict[TopicPartition, tuple[int, set[int]]]] = []

    async def commit(self, offsets: dict[tuple[str, int], tuple[int, str]]) -> None:
        self.commits.append(
            {
                TopicPartition(*tp): (offset, decode_finished(offset, metadata))
                for tp, (offset, metadata) in offsets.items()
            }
        )


class NothingToProduce:
    def send(self, outputs: list[object]) -> asyncio.Future[None]:
        assert outputs == []  # these records made nothing to produce
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


async def _run() -> list[list[dict[TopicPartition, tuple[int, set[int]]]]]:
    dispatcher = Dispatcher(Settings(commit_interval=0.05), handler=None)  # type: ignore[arg-type]
    consumer = FakeConsumer()
    dispatcher._source = consumer  # type: ignore[assignment]
    dispatcher._results.producer = NothingToProduce()  # type: ignore[assignment]
    tp = TopicPartition("deliveries", 0)
    dispatcher._owned = {tp}
    committer = asyncio.ensure_future(dispatcher._commit_progress())
    for offset in (0, 1, 2):
        dispatcher._tracker.start(tp, offset)
        await dispatcher._taken.acquire()
    seen = []
    await dispatcher._finish(tp, 1, None, dispatcher._outputs_of([]))
    await asyncio.sleep(0.15)
    seen.append(list(consumer.commits))  # 0 is unfinished: nothing may be committed
    await dispatcher._finish(tp, 0, None, dispatcher._outputs_of([]))
    await asyncio.sleep(0.15)
    seen.append(list(consumer.commits))  # 0 and 1 done: next to read is 2
    await dispatcher._finish(tp, 2, None, dispatcher._outputs_of([]))
    await asyncio.sleep(0.15)
    seen.append(list(consumer.commits))
    committer.cancel()
    return seen


def test_finished_records_are_committed_within_the_commit_interval() -> None:
    steps = asyncio.run(_run())
    tp = TopicPartition("deliveries", 0)
    last = [commits[-1][tp] for commits in steps]
    # 0 is unfinished: the offset stays there, and 1 (finished) rides along as metadata, so
    # whoever reads the partition next does not do 1 again
    assert last[0] == (0, {1})
    assert last[1:] == [(2, set()), (3, set())]


def test_the_default_commit_interval_is_short() -> None:
    assert Settings().commit_interval <= 0.1


class RefusingConsumer(FakeConsumer):
    """Refuses the first ``refusals`` commits, as a broker does while its group coordinator
    moves (``COORDINATOR_LOAD_IN_PROGRESS`` at a broker failover)."""

    def __init__(self, refusals: int) -> None:
        super().__init__()
        self.refusals = refusals
        self.tries = 0

    async def commit(self, offsets: dict[tuple[str, int], tuple[int, str]]) -> None:
        self.tries += 1
        if self.tries <= self.refusals:
            raise KafkaException(KafkaError(KafkaError.COORDINATOR_LOAD_IN_PROGRESS))
        await super().commit(offsets)


def test_a_refused_commit_is_tried_again_though_no_other_record_finishes() -> None:
    async def run() -> RefusingConsumer:
        dispatcher = Dispatcher(Settings(commit_interval=0.01), handler=None)  # type: ignore[arg-type]
        consumer = RefusingConsumer(refusals=3)
        dispatcher._source = consumer  # type: ignore[assignment]
        dispatcher._results.producer = NothingToProduce()  # type: ignore[assignment]
        tp = TopicPartition("deliveries", 0)
        dispatcher._owned = {tp}
        committer = asyncio.ensure_future(dispatcher._commit_progress())
        dispatcher._tracker.start(tp, 0)
        await dispatcher._taken.acquire()
        await dispatcher._finish(tp, 0, None, dispatcher._outputs_of([]))  # the last record
        for _ in range(100):
            if consumer.commits:
                break
            await asyncio.sleep(0.02)
        committer.cancel()
        return consumer

    consumer = asyncio.run(run())
    assert consumer.tries == 4  # three refused, backing off, then committed
    assert consumer.commits == [{TopicPartition("deliveries", 0): (1, set())}]


class SlowAcks:
    """A producer whose acks come when the test says."""

    def __init__(self) -> None:
        self.pending: list[asyncio.Future[None]] = []

    def send(self, outputs: list[object]) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending.append(future)
        return future


def test_an_endpoint_s_share_is_free_once_its_request_is_over_not_once_the_ack_comes() -> None:
    """Regression: the share was held until the broker acked the attempt's results, so a slow
    ack could make a fast endpoint look full and defer its next deliveries to a retry tier."""

    async def scenario() -> tuple[int, int, int, int]:
        dispatcher = Dispatcher(Settings(), handler=None)  # type: ignore[arg-type]
        producer = SlowAcks()
        dispatcher._results.producer = producer  # type: ignore[assignment]
        tp = TopicPartition("deliveries", 0)
        dispatcher._owned = {tp}
        dispatcher._tracker.start(tp, 0)
        await dispatcher._taken.acquire()
        dispatcher._bulkheads.hold("ep_a")
        results = dispatcher._outputs_of([Output("attempts", b"ep_a", b"{}")])
        job = asyncio.ensure_future(dispatcher._finish(tp, 0, "ep_a", results))
        for _ in range(10):  # the job runs up to the produce
            await asyncio.sleep(0)
        assert len(producer.pending) == 1
        held_while_producing = dispatcher._bulkheads.held("ep_a")
        position_before_ack = dispatcher._tracker.to_commit_with_metadata({tp})[tp][0]
        producer.pending[0].set_result(None)
        await job
        position_after = dispatcher._tracker.to_commit_with_metadata({tp})[tp][0]
        return (
            held_while_producing,
            position_before_ack,
            dispatcher._bulkheads.held("ep_a"),
            position_after,
        )

    held_while_producing, position_before_ack, held_after, position_after = asyncio.run(scenario())
    assert held_while_producing == 0  # the request is over: the endpoint's share is free
    assert (position_before_ack, position_after) == (0, 1)  # the record waits for the ack
    assert held_after == 0  # released once, not twice
