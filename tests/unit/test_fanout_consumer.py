"""The fan-out's consumer commits no offset past an event it did not fan out (issue 17).

Faust's real drain loop (``Consumer._drain_messages``) and offset bookkeeping run here; only
the fetch (``_getmany``, one scripted batch per call), the committed offsets and the commit are
fakes. Each test replays one race of a rebalance with records fetched before it, and checks the
at-least-once rule at every commit: every offset below it was fanned out before. The same races
are replayed on Faust's own consumer, which breaks the rule or stalls: the hazard is real, and
when a Faust upgrade fixes it those tests fail and say the workaround may go.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import aiokafka
import faust
import pytest
from faust.types import TP

from pipeline.endpoints.store import EndpointCache
from pipeline.kafka.fanout_consumer import (
    FETCH_MIN_BYTES,
    FanoutConsumer,
    use_fanout_consumer,
)
from pipeline.settings import Settings
from pipeline.worker import create_app

TOPIC = "t17-orders"
TP0 = TP(TOPIC, 0)


def record(offset: int) -> Any:
    """What aiokafka hands Faust for one record."""
    return SimpleNamespace(
        topic=TOPIC,
        partition=0,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        headers=[],
        key=b"k",
        value=b"v",
        checksum=None,
        serialized_key_size=1,
        serialized_value_size=1,
    )


Step = Callable[["Harness"], Awaitable[list[int]]]


class Harness:
    """A consumer of one partition. ``steps`` are the successive fetches: each may act (e.g.
    rebalance) and returns the offsets the fetch hands over. Before each fetch the commit timer
    ticks: what Faust finds committable is committed then (recorded with what had been fanned
    out by that time)."""

    def __init__(self, fanout: bool, committed: int | None) -> None:
        self.fanout = fanout
        self.committed = committed
        self.fanned_out: list[int] = []
        self.commits: list[tuple[int, set[int]]] = []
        self.held: list[Any] = []  # delivered, waiting in a buffer (not fanned out yet)
        self.hold = False
        self.on_deliver: Callable[[int], Awaitable[None]] | None = None
        self.seeks = 0  # aiokafka's position sought back (to committed, or to the start)

    def _build(self) -> None:
        """The app and its consumer, on the running loop (Faust's services bind to it)."""
        app = faust.App(
            f"t17-{uuid.uuid4().hex[:8]}", broker="kafka://127.0.0.1:1", store="memory://"
        )
        if self.fanout:
            use_fanout_consumer(app, fetch_wait_ms=5)
        app.topics._acking_topics.add(TOPIC)
        self.app = app

        async def noop(*_args: Any) -> None:
            return None

        consumer = app.transport.create_consumer(
            callback=self.deliver, on_partitions_revoked=noop, on_partitions_assigned=noop
        )
        assert isinstance(consumer, FanoutConsumer) is self.fanout
        self.consumer = consumer
        consumer.seek_to_committed = self.seek_to_committed
        consumer.earliest_offsets = self.earliest_offsets
        consumer._seek = self.fake_seek
        consumer.highwater = lambda tp: 0
        consumer.assignment = lambda: {TP0}

    async def seek_to_committed(self) -> dict[TP, int | None]:
        if self.committed:  # as aiokafka: no seek without a committed offset above 0
            self.seeks += 1
        return {TP0: self.committed}

    async def earliest_offsets(self, *partitions: Any) -> dict[Any, int]:
        return dict.fromkeys(partitions, 0)

    async def fake_seek(self, partition: Any, offset: int) -> None:
        self.seeks += 1

    async def deliver(self, message: Any) -> None:
        """The conductor and the agent: fan the event out and ack it (or hold it)."""
        message.incref()
        if self.on_deliver is not None:
            await self.on_deliver(message.offset)
        if self.hold:
            self.held.append(message)
        else:
            self.fanned_out.append(message.offset)
            message.ack(self.consumer)

    def skip(self, message: Any) -> None:
        """What a Faust stream does with an event of an old generation: ack it unprocessed."""
        message.ack(self.consumer)

    def tick(self) -> None:
        for tp, offset in self.consumer._filter_committable_offsets({TP0}).items():
            self.consumer._committed_offset[tp] = offset  # as _commit_offsets does
            self.committed = offset
            self.commits.append((offset, set(self.fanned_out)))

    async def rebalance(self) -> None:
        """Revoked and assigned back (same partition, next generation), sought to committed."""
        await self.consumer.on_partitions_revoked({TP0})
        self.app.consumer_generation_id += 1
        await self.consumer.on_partitions_assigned({TP0})
        await self.consumer.perform_seek()

    def run(self, steps: list[Step]) -> Harness:
        async def main() -> None:
            self._build()
            consumer = self.consumer
            await consumer.on_partitions_assigned({TP0})
            await consumer.perform_seek()
            fetcher = SimpleNamespace(_stopped=asyncio.Event())
            script = iter(steps)

            async def getmany(active_partitions: Any, timeout: float) -> dict[TP, list[Any]]:  # noqa: ASYNC109
                self.tick()
                step = next(script, None)
                if step is None:
                    fetcher._stopped.set()
                    return {}
                return {TP0: [record(o) for o in await step(self)]}

            consumer._getmany = getmany
            try:
                await asyncio.wait_for(consumer._drain_messages(fetcher), 10)
            finally:
                consumer._thread.thread_loop.close()  # made for a consumer thread never started

        asyncio.run(main())
        return self

    def unsafe_commits(self, start: int) -> list[str]:
        return [
            f"committed {offset} with {sorted(set(range(start, offset)) - seen)} not fanned out"
            for offset, seen in self.commits
            if not set(range(start, offset)) <= seen
        ]


def fetch(*offsets: int) -> Step:
    async def step(_h: Harness) -> list[int]:
        return list(offsets)

    return step


# 1. faust-streaming #221: records fetched before a rebalance handed out after its seek


def prefetched_across_a_rebalance(h: Harness) -> Harness:
    async def rebalance_during_the_fetch(h: Harness) -> list[int]:
        await h.rebalance()  # while the fetch was under way: back to committed offset 10
        return [40, 41]  # fetched for the old position

    return h.run([fetch(*range(10, 40)), rebalance_during_the_fetch, fetch(*range(10, 42))])


def test_records_prefetched_before_a_rebalance_are_read_again_not_committed_over() -> None:
    h = prefetched_across_a_rebalance(Harness(fanout=True, committed=10))
    assert h.unsafe_commits(10) == []
    assert h.committed == 42
    assert set(h.fanned_out) >= set(range(10, 42))


def test_faust_own_consumer_commits_over_them() -> None:
    # (the rebalance comes before anything of the partition was fanned out)
    h = Harness(fanout=False, committed=10)

    async def rebalance_during_the_fetch(h: Harness) -> list[int]:
        await h.rebalance()
        return [40, 41]

    h.run([rebalance_during_the_fetch, fetch(*range(10, 42))])
    assert h.committed == 42
    assert f"committed 42 with {list(range(10, 40))} not fanned out" in h.unsafe_commits(10)


# 2. faust-streaming #236: an event stuck in a full buffer, skipped by the stream and acked


def stale_event_acked(fanout: bool) -> Harness:
    h = Harness(fanout=fanout, committed=None)  # nothing committed yet: no head check in Faust

    async def first(h: Harness) -> list[int]:
        h.hold = True  # the agent's buffer is full: 0, 1 and 2 wait
        return [0, 1, 2]

    async def rebalance_then_stale_ack(h: Harness) -> list[int]:
        h.hold = False
        await h.rebalance()  # the buffer is cleared, but 2 was a pending put: it lands after
        h.skip(h.held[2])  # the stream skips it for its old generation, and acks it
        h.tick()
        return []

    return h.run([first, rebalance_then_stale_ack, fetch(0, 1, 2, 3)])


def test_a_stale_event_acked_unprocessed_makes_nothing_committable() -> None:
    h = stale_event_acked(fanout=True)
    assert h.unsafe_commits(0) == []
    assert h.committed == 4


def test_faust_own_consumer_commits_the_partition_past_it() -> None:
    h = stale_event_acked(fanout=False)
    assert "committed 3 with [0, 1, 2] not fanned out" in h.unsafe_commits(0)


# 3. A rebalance while the drain loop hands a record to the agent


def rebalance_while_delivering(fanout: bool) -> Harness:
    h = Harness(fanout=fanout, committed=5)

    async def on_deliver(offset: int) -> None:
        if offset == 7 and h.on_deliver is not None:
            h.on_deliver = None
            h.hold = True  # 7 and 8 never reach the agent: the rebalance clears the buffer
            await h.rebalance()  # back to 5: the drain loop then records 7 as read

    async def first(h: Harness) -> list[int]:
        h.on_deliver = on_deliver
        return [5, 6, 7, 8]

    async def again(h: Harness) -> list[int]:
        h.hold = False
        return [5, 6, 7, 8]

    return h.run([first, again])


def test_records_read_again_after_a_rebalance_mid_delivery_are_not_dropped() -> None:
    h = rebalance_while_delivering(fanout=True)
    assert h.unsafe_commits(5) == []
    assert h.committed == 9


def test_faust_own_consumer_drops_them_and_the_partition_stalls() -> None:
    h = rebalance_while_delivering(fanout=False)
    assert h.unsafe_commits(5) == []
    assert h.committed == 5  # stuck: 7 was taken as read, so 5..7 re-read are dropped


# 4. A fetch under way across a rebalance returns the right records, and they are cut


@pytest.mark.parametrize("committed", [None, 5])
def test_a_batch_cut_at_a_rebalance_is_read_again_not_skipped(committed: int | None) -> None:
    start = committed or 0
    h = Harness(fanout=True, committed=committed)

    async def rebalance_during_the_fetch(h: Harness) -> list[int]:
        await h.rebalance()
        h.seeks = 0
        return list(range(start, start + 3))  # read for the new assignment, from committed

    async def next_fetch(h: Harness) -> list[int]:
        # aiokafka's position is past the batch unless something sought it back
        return list(range(start, start + 5)) if h.seeks else [start + 3, start + 4]

    h.run([rebalance_during_the_fetch, next_fetch, fetch()])
    assert h.unsafe_commits(start) == []
    assert h.committed == start + 5


# 5. Offsets the broker skips (transaction markers, compaction) still commit to the end


@pytest.mark.parametrize("committed", [None, 3])
def test_offsets_the_broker_skips_are_committed_over(committed: int | None) -> None:
    # a transactional producer: a commit marker after each transaction (3 and 6); a seek to 3
    # lands on a marker, so the first record read is 4
    first = [0, 1, 2, 4, 5] if committed is None else [4, 5]
    # (Faust's gap bookkeeping may take a commit more to get there: one more fetch, empty)
    h = Harness(fanout=True, committed=committed).run([fetch(*first), fetch(7, 8), fetch()])
    assert h.committed == 9
    assert set(h.fanned_out) == {*first, 7, 8}


def test_the_fanout_fetches_wait_for_bytes_not_for_each_record() -> None:
    """Faust asks aiokafka for 1 byte or 1.5 s; the fan-out's consumer waits for
    FETCH_MIN_BYTES or the wait it is given (fewer fetch round trips in aiokafka's thread)."""

    async def main() -> tuple[tuple[int, int], tuple[int, int]]:
        app = faust.App(
            f"t15-{uuid.uuid4().hex[:8]}", broker="kafka://127.0.0.1:1", store="memory://"
        )
        use_fanout_consumer(app, fetch_wait_ms=7)

        async def noop(*_args: Any) -> None:
            return None

        consumer = app.transport.create_consumer(
            callback=noop, on_partitions_revoked=noop, on_partitions_assigned=noop
        )
        kafka = consumer._thread._create_worker_consumer(app.transport)
        # aiokafka keeps what it hands its fetcher at start under these names: a rename in an
        # upgrade would drop ours silently, so the plain consumer is checked too
        plain = aiokafka.AIOKafkaConsumer(
            bootstrap_servers="127.0.0.1:1", fetch_min_bytes=7, fetch_max_wait_ms=9
        )
        found = (
            (kafka._fetch_min_bytes, kafka._fetch_max_wait_ms),
            (plain._fetch_min_bytes, plain._fetch_max_wait_ms),
        )
        await kafka.stop()  # never started: only marked closed
        await plain.stop()
        consumer._thread.thread_loop.close()  # the consumer thread's loop, never run
        return found

    ours, plain = asyncio.run(main())
    assert ours == (FETCH_MIN_BYTES, 7)
    assert plain == (7, 9)


@pytest.mark.parametrize(("role", "wait"), [("all", 5), ("fanout", 5), ("sender", 1500)])
def test_a_sender_only_worker_keeps_faust_s_long_fetch_wait(role: str, wait: int) -> None:
    """Nothing to fan out in a sender-only worker: its Faust consumer need not fetch every few
    milliseconds (idle, such a worker used 3.4 % of a core with the 5 ms wait, 0.7 % without)."""
    settings = Settings(worker_role=role, fanout_fetch_wait_ms=5)
    app = create_app(settings, endpoints=EndpointCache(settings))
    assert app.transport.fetch_wait_ms == wait
