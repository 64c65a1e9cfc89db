"""Ordered endpoints: an order's deliveries reach the endpoint one after the other.

An endpoint with ``ordered`` set receives the deliveries of one *ordering key* (the event's
``data.order_id``) strictly in order: a later one is not attempted before the earlier one was
delivered or dead-lettered. Only that key waits; other keys and endpoints flow.

How (the sender of the endpoint's partition keeps, per ``endpoint id|key``, a FIFO queue):

* A delivery joins its key's queue when the sender first takes it. An endpoint's first tries
  are on one partition, in publication order (the fan-out produces an order's events in order),
  so the queue is in publication order too.
* The queue's head is the only delivery that may be attempted. A later one taken while the
  head's attempt is in flight waits in memory for it (no extra delay when the head succeeds);
  taken while the head waits for its retry, it is *parked*: sent to a retry tier without using
  an attempt, due when the head is, and decided again when it comes back.
* When the head is delivered or dead-lettered (its results acknowledged), it leaves the queue
  and the next one is the head. An empty queue is forgotten (memory holds only keys with
  deliveries unfinished).
* Every change of a queue is written to the compacted ``velourcity.ordering`` topic and
  acknowledged before the offset of the record that made it may be committed, so a worker
  that restarts, or takes the partition over, knows who is next. The attempts in flight are
  not kept: after a crash their records are read again.

This module holds the pure bookkeeping (:class:`OrderingBook`, :func:`park_until`) and the
reader of the topic (:class:`OrderingLog`); :mod:`pipeline.delivery.dispatcher` drives them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import orjson
import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from confluent_kafka import Consumer

from pipeline.kafka.connection import aiokafka_kwargs, librdkafka_config
from pipeline.settings import Settings
from pipeline.topics import ORDERING

log = structlog.get_logger(__name__)


def queue_name(endpoint_id: str, key: str) -> str:
    """The queue's key on the ordering topic (endpoint ids never hold a ``|``)."""
    return f"{endpoint_id}|{key}"


@dataclass(frozen=True, slots=True)
class Decision:
    kind: Literal["attempt", "wait", "park"]
    """attempt: it is the head, go; wait: the head's attempt is in flight, wait for its end;
    park: the head waits for a retry, so this one goes to a retry tier (no attempt used)."""
    head_due: int | None = None
    """park: when the head's next attempt is due (unix ms), when known."""
    changed: bool = False
    """The queue changed (the delivery joined it): write it before committing the offset."""


@dataclass
class _Queue:
    ids: list[str] = field(default_factory=list)
    """Delivery ids in order; the first is the head."""
    busy: bool = False
    """The head's attempt is in flight on this worker (memory only: a crash redoes it)."""
    head_due: int | None = None
    """When the head's retry is due, unix ms (a hint for parking; kept on the topic)."""


class OrderingBook:
    """Every ordered key's queue on this worker. Pure: no I/O, no clock."""

    def __init__(self) -> None:
        self._queues: dict[str, _Queue] = {}

    def __len__(self) -> int:
        return len(self._queues)

    def ids(self, name: str) -> list[str]:
        queue = self._queues.get(name)
        return list(queue.ids) if queue else []

    def enqueue(self, name: str, delivery_id: str) -> bool:
        """Join the queue (once); True when it changed."""
        queue = self._queues.setdefault(name, _Queue())
        if delivery_id in queue.ids:
            return False
        queue.ids.append(delivery_id)
        return True

    def decide(self, name: str, delivery_id: str) -> Decision:
        """What to do with a delivery of this queue now (it joins the queue if new). An
        ``attempt`` marks the head busy until :meth:`settle`."""
        changed = self.enqueue(name, delivery_id)
        queue = self._queues[name]
        if queue.busy:
            return Decision("wait", changed=changed)
        if queue.ids[0] == delivery_id:
            queue.busy = True
            return Decision("attempt", changed=changed)
        return Decision("park", head_due=queue.head_due, changed=changed)

    def settle(self, name: str, delivery_id: str, retry_due: int | None) -> bool:
        """The attempt :meth:`decide` allowed is over and its results are acknowledged:
        ``retry_due`` None means delivered or dead-lettered (it leaves the queue), else it stays
        the head until then. True when the queue changed (write it)."""
        queue = self._queues.get(name)
        if queue is None or delivery_id not in queue.ids:
            return False
        if queue.ids[0] == delivery_id:
            queue.busy = False
        if retry_due is not None:
            if queue.ids[0] != delivery_id or queue.head_due == retry_due:
                return False
            queue.head_due = retry_due
            return True
        if queue.ids[0] == delivery_id:
            queue.head_due = None  # the next head's due time is not known yet
        queue.ids.remove(delivery_id)
        if not queue.ids:
            del self._queues[name]
        return True

    def drop(self, name: str, delivery_id: str) -> bool:
        """Leave the queue without waiting: the endpoint is no longer ordered (or is gone), so
        nothing that is left in its queues may hold later deliveries back."""
        queue = self._queues.get(name)
        if (
            queue is None
            or delivery_id not in queue.ids
            or (queue.busy and queue.ids[0] == delivery_id)
        ):
            return False
        return self.settle(name, delivery_id, None)

    def snapshot(self, name: str) -> bytes | None:
        """The queue as written to the ordering topic; None (a tombstone) when empty."""
        queue = self._queues.get(name)
        if queue is None:
            return None
        return orjson.dumps({"ids": queue.ids, "head_due": queue.head_due})

    def load(self, stored: dict[str, bytes]) -> None:
        """Start from the ordering topic's content (at start and after a rebalance); an
        unreadable value counts as an empty queue."""
        self._queues.clear()
        for name, raw in stored.items():
            with contextlib.suppress(orjson.JSONDecodeError, TypeError, KeyError):
                value = orjson.loads(raw)
                ids = [str(i) for i in value["ids"]]
                if ids:
                    self._queues[name] = _Queue(ids=ids, head_due=value.get("head_due"))


def park_until(now_ms: int, head_due: int | None, tiers: Sequence[float]) -> tuple[float, int]:
    """Where a parked delivery waits: ``(tier, not_before)``.

    It should come back when the head is due; but a retry tier holds records in due order,
    and one due later than the tier's delay would pause the partition for everyone behind it.
    So it goes to the longest tier not longer than the wait, for at most that tier's delay
    (it may come back early and be parked again); with no known due time, the first tier.
    """
    first = min(tiers) if tiers else 1.0
    wait = (head_due - now_ms) / 1000 if head_due is not None else 0.0
    if wait <= 0:
        return first, now_ms + int(first * 1000)
    tier = max((d for d in tiers if d <= wait), default=first)
    return tier, now_ms + int(min(wait, tier) * 1000)


def _partitions(settings: Settings, topic: str) -> list[int]:
    consumer = Consumer({**librdkafka_config(settings), "group.id": "metadata"})
    try:
        found = consumer.list_topics(topic, timeout=30).topics.get(topic)
    finally:
        consumer.close()
    if found is None or found.error is not None or not found.partitions:
        raise RuntimeError(f"topic {topic} does not exist (velourcity topics create)")
    return list(found.partitions)


class OrderingLog:
    """Reads the compacted ordering topic into memory and keeps following it, so a worker can
    load the queues as they were written, up to the last acknowledged write, whenever it
    (re)gets partitions (:meth:`catch_up`)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.topic = settings.topic(ORDERING)
        self.values: dict[str, bytes] = {}
        self._read_to: dict[TopicPartition, int] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            **aiokafka_kwargs(self._settings),
            enable_auto_commit=False,
            group_id=None,
        )
        partitions = await asyncio.to_thread(_partitions, self._settings, self.topic)
        await consumer.start()
        self._consumer = consumer
        parts = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        self._read_to = dict.fromkeys(parts, 0)
        self._task = asyncio.ensure_future(self._follow())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()

    async def catch_up(self, seconds: float = 60.0) -> dict[str, bytes]:
        """Wait until every write acknowledged before this call was read; return the queues."""
        assert self._consumer is not None
        ends = await self._consumer.end_offsets(list(self._read_to))
        deadline = asyncio.get_running_loop().time() + seconds
        while any(self._read_to[tp] < end for tp, end in ends.items()):
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"topic {self.topic} not read to its end within {seconds}s")
            await asyncio.sleep(0.02)
        return dict(self.values)

    async def _follow(self) -> None:
        assert self._consumer is not None
        while True:
            try:
                batch = await self._consumer.getmany(timeout_ms=200)
            except KafkaError as exc:
                log.warning("reading the ordering topic failed; retrying", error=repr(exc))
                await asyncio.sleep(1)
                continue
            for records in batch.values():
                for record in records:
                    if record.key is None:
                        continue
                    name = record.key.decode()
                    if record.value is None:
                        self.values.pop(name, None)
                    else:
                        self.values[name] = record.value
            for tp in self._read_to:  # past compacted gaps, too
                self._read_to[tp] = await self._consumer.position(tp)
