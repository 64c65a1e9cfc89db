"""confluent-kafka's (librdkafka's) group consumer, feeding an asyncio loop in batches.

librdkafka fetches in its own threads; one thread of ours takes what it has fetched, up to
:data:`BATCH` records at a time (``poll`` for the first, so an idle consumer wakes at once,
``consume(timeout=0)`` for what else is ready), and hands the batch to a coroutine on the
loop, waiting until the loop took it. So the loop never blocks on Kafka, the thread never
runs ahead of the loop (a seek or pause the loop made before the next batch holds), and the
loop's own backpressure stops the consumer.

Rebalances run librdkafka's callbacks on that thread: each waits, blocking the thread, for
its coroutine on the loop (``on_revoke`` lets the jobs of the revoked partitions finish and
commits them; ``on_assign`` reads back what the partitions need), so no record of a new
assignment is handed over before ``on_assign`` is done, and no revoked partition moves on
before ``on_revoke`` is.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

log = structlog.get_logger(__name__)

BATCH = 1000
POLL_SECONDS = 0.05
"""Longest a seek, pause or resume asked for by the loop waits to be carried out."""

OnBatch = Callable[[list[Message]], Coroutine[Any, Any, None]]
Offsets = dict[tuple[str, int], tuple[int, str]]
"""(topic, partition) → (offset to commit, its metadata)."""
OnAssign = Callable[[list[tuple[str, int]]], Coroutine[Any, Any, None]]
OnRevoke = Callable[[list[tuple[str, int]]], Coroutine[Any, Any, Offsets]]


class GroupConsumer:
    def __init__(
        self,
        config: dict[str, Any],
        topics: list[str],
        *,
        on_batch: OnBatch,
        on_assign: OnAssign,
        on_revoke: OnRevoke,
    ) -> None:
        self._consumer = Consumer(config)
        self._topics = topics
        self._on_batch = on_batch
        self._on_assign = on_assign
        self._on_revoke = on_revoke
        self._stopping = threading.Event()
        self._todo: deque[Callable[[], object]] = deque()
        self._commits: deque[_CommitRequest] = deque()
        """Asked by the loop, made by the consumer's thread (kept across a revoke: a commit
        refused for a partition let go fails its caller, which the next commit catches up)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name="sender-consumer", daemon=True)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread.start()

    async def stop(self) -> None:
        """Leave the group: the revoke callback runs (on the loop) before this returns."""
        self._stopping.set()
        if self._thread.is_alive():
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join)

    # Called from the loop ------------------------------------------------------------
    # Seeks, pauses and resumes run on the consumer's thread, between two polls: made from
    # another thread while it polled, a seek then a resume lost the record sought (librdkafka
    # 2.16: fetching resumed past it); made between polls, they hold.

    def seek(self, topic: str, partition: int, offset: int) -> None:
        self._todo.append(lambda: self._consumer.seek(TopicPartition(topic, partition, offset)))

    def pause(self, topic: str, partition: int) -> None:
        self._todo.append(lambda: self._consumer.pause([TopicPartition(topic, partition)]))

    def resume(self, topic: str, partition: int) -> None:
        self._todo.append(lambda: self._consumer.resume([TopicPartition(topic, partition)]))

    def high_watermark(self, topic: str, partition: int) -> int | None:
        """The partition's end as of the last fetch (no request)."""
        try:
            _, high = self._consumer.get_watermark_offsets(
                TopicPartition(topic, partition), cached=True
            )
        except KafkaException:
            return None
        return int(high) if high >= 0 else None

    def partitions(self, topic: str, timeout: float = 10.0) -> list[int]:
        """The topic's partition numbers (a metadata request: blocking)."""
        found = self._consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        return sorted(found.partitions) if found is not None and found.partitions else []

    async def commit(self, offsets: Offsets) -> None:
        """Commit ``(topic, partition) → (offset, metadata)``; raises KafkaException.

        The commit is made on the consumer's thread, between two polls: confluent-kafka 2.16
        lets one call at a time use a consumer, and a commit from another thread waited for a
        gap between polls that an idle consumer, polling again at once, never left (the last
        offsets of a burst stayed uncommitted until the next record: the chaos suite's
        failover scenario found every deliveries partition behind once traffic stopped)."""
        if not offsets:
            return
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._commits.append((offsets, done, loop))
        if not self._thread.is_alive():
            self._fail_commits()
        await done

    def _commit(self, offsets: Offsets) -> None:
        commits = [
            TopicPartition(topic, partition, offset, metadata=metadata)
            for (topic, partition), (offset, metadata) in offsets.items()
        ]
        if commits:
            self._consumer.commit(offsets=commits, asynchronous=False)

    # The consumer's thread ------------------------------------------------------------

    def _call(self, work: Coroutine[Any, Any, Any]) -> Any:
        assert self._loop is not None
        try:
            return asyncio.run_coroutine_threadsafe(work, self._loop).result()
        except Exception:  # never end the consumer: what failed is read again later
            log.exception("the sender failed to take a batch or a rebalance")
            return None

    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Assigned (from their committed offsets) and running: a partition this consumer had
        paused before the rebalance (a retry tier's head not due) stays paused across it in
        librdkafka, while the loop's timer to resume it was dropped with the revoke; the
        chaos suite's receiver outage lost deliveries in such a tier until this resume."""
        consumer.assign(partitions)
        consumer.resume(partitions)
        self._call(self._on_assign([(p.topic, p.partition) for p in partitions]))

    def _revoked(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """The loop lets the partitions go; their last offsets are committed here, on this
        thread, before the group moves on (a commit from another thread during ``close``
        waited for its timeout)."""
        offsets = self._call(self._on_revoke([(p.topic, p.partition) for p in partitions]))
        self._todo.clear()  # seeks and pauses of the partitions let go
        try:
            self._commit(offsets or {})
        except KafkaException as exc:  # the next owner redoes what was not committed
            log.warning("offsets of revoked partitions not committed", error=str(exc))

    def _lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Lost (e.g. a session timeout): another owner may have them already; no commit."""
        self._call(self._on_revoke([(p.topic, p.partition) for p in partitions]))
        self._todo.clear()

    def _run(self) -> None:
        consumer = self._consumer
        consumer.subscribe(
            self._topics, on_assign=self._assigned, on_revoke=self._revoked, on_lost=self._lost
        )
        try:
            while not self._stopping.is_set():
                while self._todo:
                    try:
                        self._todo.popleft()()
                    except KafkaException as exc:  # e.g. the partition is no longer assigned
                        log.info("seek, pause or resume not done", error=str(exc))
                while self._commits:
                    self._commit_next()
                first = consumer.poll(POLL_SECONDS)
                if first is None:
                    continue
                batch = [first, *consumer.consume(BATCH - 1, timeout=0)]
                records = [m for m in batch if m.error() is None]
                for message in batch:
                    if (error := message.error()) is not None:
                        log.warning("consumer error", error=error.str())
                if records:
                    self._call(self._on_batch(records))
        except Exception:
            log.exception("sender consumer stopped")
        finally:
            consumer.close()  # leaves the group: the revoke callback runs first
            self._fail_commits()

    def _commit_next(self) -> None:
        offsets, done, loop = self._commits.popleft()
        try:
            self._commit(offsets)
        except KafkaException as exc:
            loop.call_soon_threadsafe(_settle, done, exc)
        else:
            loop.call_soon_threadsafe(_settle, done, None)

    def _fail_commits(self) -> None:
        while self._commits:
            _offsets, done, loop = self._commits.popleft()
            error = KafkaException(KafkaError(KafkaError._DESTROY, "the consumer is closed"))
            loop.call_soon_threadsafe(_settle, done, error)


_CommitRequest = tuple[Offsets, "asyncio.Future[None]", asyncio.AbstractEventLoop]


def _settle(done: asyncio.Future[None], error: BaseException | None) -> None:
    if done.done():
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)
