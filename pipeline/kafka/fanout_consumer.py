"""The fan-out's Faust consumer: Faust's own (aiokafka), except that a record read before a
rebalance or a seek can neither reach the fan-out afterwards nor count as processed (issue 17).

Faust (0.15.3, ``faust/transport/consumer.py``) keeps, per partition, the last offset read
(``_read_offset``) and the offsets acked by the streams (``_acked``); it commits the longest run
of acked offsets. Two of its shortcuts go wrong when a record fetched before a rebalance turns up
after it, past the offset the rebalance sought back to (faust-streaming #221, #236):

* the drain loop (``Consumer._drain_messages``) takes any jump in a partition's offsets for a
  gap (compaction, transaction markers) and ``_add_gap`` marks the skipped offsets committable;
  once it has read the stale record, the records re-read from the committed offset are lower
  than ``_read_offset`` and dropped ("DROPPED MESSAGE ROFF"): their offsets are committed, the
  events never fanned out;
* a stale event that reaches a stream (e.g. a conductor's pending put into a full buffer) is
  skipped by the stream for its old generation *and acked*; with no committed offset yet
  ``Consumer._new_offset`` has no head check, so that ack alone commits the partition past
  everything before it.

Here every rebalance and every seek starts a new *epoch*. A batch of records that was being
fetched or handed out when the epoch changed is cut, and every partition is sought back to its
committed offset (the start, when it has none) so that all of it is read again; an ack counts
only for a record handed out in the current epoch:
acks of older ones (processed or skipped) are ignored, their records are read again and
fanned out again (at-least-once; the sender skips fan-out copies). Within one epoch the records
of a partition come from aiokafka in fetch order from the sought position, so a jump there is
the broker's own (a transaction marker, an aborted or compacted record) and Faust's gap
handling stays as it is: a topic written by a transactional producer still commits to its end
(``tests/integration/test_fanout_transactional_on_kafka.py``).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Mapping
from typing import Any, cast
from weakref import WeakSet

import aiokafka
import faust
from aiokafka.structs import TopicPartition
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message

__all__ = ["FAUST_FETCH_WAIT_MS", "FETCH_MIN_BYTES", "FanoutConsumer", "use_fanout_consumer"]

FETCH_MIN_BYTES = 64 * 1024
"""The fan-out's fetches wait for this much (or ``settings.fanout_fetch_wait_ms``, whichever
comes first). Faust asks for 1 byte or 1.5 s: a fetch round trip for every few records that
arrive, each one Python work in aiokafka's thread (protocol, records, hand-over to the loop).
At a steady 500 events/s that thread took 25 % of a core; waiting up to 5 ms halved it, and
at 1,000 events/s p99 fell from 113 to 70 ms (README, Benchmarks). The price is an idle
worker's fetch every few milliseconds instead of every 1.5 s."""


class FanoutConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer with epochs (see the module's docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._epoch = 0
        self._handed_out: WeakSet[Message] = WeakSet()  # this epoch's records, by identity
        self._epoch_read_offset: dict[TP, int | None] = {}
        super().__init__(*args, **kwargs)

    def _new_epoch(self) -> None:
        self._epoch += 1
        self._handed_out = WeakSet()
        # what a rebalance or a seek left as read: put back if the drain loop records a stale
        # record as read after the epoch changed (see getmany)
        self._epoch_read_offset = dict(self._read_offset)

    async def _in_new_epoch(self, change: Awaitable[None]) -> None:
        """A rebalance step or a seek: an epoch ends before it (a fetch under way reads from
        the old position; nothing handed out from here on counts) and another after it."""
        self._new_epoch()
        try:
            await change
        finally:
            self._new_epoch()

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        await self._in_new_epoch(super().on_partitions_revoked(revoked))

    async def on_partitions_assigned(self, assigned: set[TP], generation_id: int = 0) -> None:
        await self._in_new_epoch(super().on_partitions_assigned(assigned, generation_id))

    async def perform_seek(self) -> None:
        await self._in_new_epoch(super().perform_seek())

    async def seek(self, partition: TP, offset: int) -> None:
        await self._in_new_epoch(super().seek(partition, offset))

    async def seek_wait(self, partitions: Mapping[TP, int]) -> None:
        await self._in_new_epoch(super().seek_wait(partitions))

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:  # noqa: ASYNC109
        """Faust's batch, cut where the epoch changes. aiokafka's position has moved past the
        whole batch, so after a cut every partition is sought back to its committed offset:
        nothing of the batch is handed out under the new epoch, all of it is read again."""
        epoch = self._epoch
        records = cast(AsyncGenerator[tuple[TP, Message], None], super().getmany(timeout))
        cut = False
        try:
            async for tp, message in records:
                if self._epoch != epoch:
                    cut = True
                    return
                self._handed_out.add(message)
                yield tp, message
                if self._epoch != epoch:
                    # The epoch changed while the drain loop delivered this record, and the
                    # loop has just set it as the partition's read offset: undo that, or the
                    # records read again from the sought offset would be dropped as read.
                    self._read_offset[tp] = self._epoch_read_offset.get(tp)
                    cut = True
                    return
        finally:
            await records.aclose()
            if cut:
                await self._read_again()

    async def _read_again(self) -> None:
        while not self.should_stop:
            try:
                await self.perform_seek()
                # aiokafka seeks only the partitions with a committed offset above 0: the others
                # stay where its fetcher got to, past the cut records. To their first offset
                # (the app's auto_offset_reset is earliest), with a plain seek: a reset request
                # would leave aiokafka's position unset meanwhile, which Faust's livelock check
                # takes for a crash.
                uncommitted = [
                    TopicPartition(tp.topic, tp.partition)
                    for tp in self.assignment()
                    if not self._committed_offset.get(tp)
                ]
                if uncommitted:
                    for tp, offset in (await self.earliest_offsets(*uncommitted)).items():
                        await self.seek(tp, offset)
                return
            except Exception as exc:  # e.g. mid-rebalance, or no coordinator in a failover
                self.log.warning("Seek to committed offsets after a cut batch failed: %r", exc)
                await self.sleep(1.0)

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return FanoutConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def ack(self, message: Message) -> bool:
        if message not in self._handed_out:
            # Handed out before the last rebalance or seek: processed or skipped, it is read
            # and fanned out again, so its ack must not make its offset committable.
            message.acked = True
            self._unacked_messages.discard(message)
            return False
        return bool(super().ack(message))


class FanoutConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's aiokafka consumer thread, its consumer fetching with our waits (see
    :data:`FETCH_MIN_BYTES`)."""

    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # Faust passes no fetch_min_bytes and a fixed fetch_max_wait_ms; aiokafka reads both
        # when the consumer starts (tests/unit/test_fanout_consumer.py checks they arrive).
        consumer._fetch_min_bytes = FETCH_MIN_BYTES
        consumer._fetch_max_wait_ms = cast(FanoutTransport, transport).fetch_wait_ms
        return consumer


FAUST_FETCH_WAIT_MS = 1500
"""Faust's own fetch wait: for a worker with nothing to fan out (``worker_role=sender``)."""


class FanoutTransport(faust_aiokafka.Transport):
    Consumer = FanoutConsumer
    fetch_wait_ms = FAUST_FETCH_WAIT_MS


def use_fanout_consumer(app: faust.App, *, fetch_wait_ms: int) -> None:
    """Give ``app`` the :class:`FanoutConsumer`, fetching with ``fetch_wait_ms`` (see
    :data:`FETCH_MIN_BYTES`): call it right after ``faust.App(...)``, before anything (a topic,
    an agent) makes Faust build its own transport."""
    urls = app.conf.broker_consumer
    assert all(url.scheme == "kafka" for url in urls), urls  # faust_broker's kafka:// URLs
    app.transport = FanoutTransport(urls, app)
    app.transport.fetch_wait_ms = fetch_wait_ms
