"""Requests not to make twice: fan-out copies, and what a dead worker delivered uncommitted.

The fan-out is at least once: after a crash or a rebalance, Faust hands the events fanned out
since its last commit to another worker, which fans them out again. The deliveries it writes
are the same (same delivery id, same key, so the same partition), and without this each
would be POSTed a second time: in the chaos suite's worker-crash scenario, most duplicates
were these. The fan-out marks each record it writes with :data:`FANOUT_HEADER` (the delivery
id), and the sender remembers, per partition, the offset where it first saw each id in the
last ``duplicate_window`` seconds (:class:`RecentFanouts`). A later record with the same id is
a copy: the earlier one is finished or will be (it is before it in the same partition), so
the copy is skipped. Only fan-out records carry the header: a retry, a replay or a "send
again" from the API is never taken for a copy.

A sender killed between a request and the commit of its record leaves the record to the next
owner, which would send it again; but the attempt log (same key, same partition number) may
already say it was delivered. :class:`DeliveredBefore` holds those successes, and the record
is skipped when its attempt was delivered after the record was written (a re-send written
after a success is sent).

A replay through the fan-out (``velourcity replay --reset-offsets``) writes the same records
again on purpose: it first writes a fence (:data:`FENCE_HEADER`) to each partition, and the
sender forgets what it saw before a fence.

At assignment, the new owner reads the window back (:func:`read_back`): the fan-out records
before its committed offsets, and the attempt log. What it misses costs a duplicate, never a
loss: a request in flight at the kill, or one whose attempt log was not written, is sent again.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, Generic, TypeVar

import orjson
import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from pipeline.delivery.record import Attempt

log = structlog.get_logger(__name__)

FANOUT_HEADER = "velourcity-fanout"
"""Header of the records the fan-out writes; its value is the delivery id."""

FENCE_HEADER = "velourcity-fence"
"""Header of the (empty) record ``velourcity replay --reset-offsets`` writes to each partition
of the deliveries topic: the fan-out records after it are a deliberate replay, not copies of
the ones before it."""

P = TypeVar("P", bound=Hashable)

READ_BACK_SECONDS = 30.0
"""Longest an assignment spends reading the window back (a copy missed is a duplicate)."""


def marks(headers: Any) -> tuple[str | None, bool]:
    """One pass over a deliveries record's headers (``(name, value)`` pairs, as either
    client gives them): its fan-out id (None: not written by the fan-out), and whether it is
    a fence."""
    if not headers:
        return None, False
    delivery_id, fence = None, False
    for name, value in headers:
        if name == FANOUT_HEADER and isinstance(value, bytes):
            delivery_id = value.decode(errors="replace")
        elif name == FENCE_HEADER:
            fence = True
    return delivery_id, fence


def is_fence(headers: Sequence[tuple[str, bytes]] | None) -> bool:
    return any(name == FENCE_HEADER for name, _ in headers or ())


def fanout_id(headers: Sequence[tuple[str, bytes]] | None) -> str | None:
    """The delivery id a fan-out record carries; None for any other record."""
    for name, value in headers or ():
        if name == FANOUT_HEADER:
            return value.decode(errors="replace")
    return None


class RecentFanouts(Generic[P]):
    """Per partition: delivery id → offset of the first fan-out record seen with it, for the
    records whose timestamps are within ``window_ms`` of the latest one seen."""

    def __init__(self, window_ms: int) -> None:
        self._window_ms = window_ms
        self._seen: dict[P, OrderedDict[str, tuple[int, int]]] = {}

    def is_copy(self, partition: P, delivery_id: str, offset: int, timestamp_ms: int) -> bool:
        """True when an earlier offset of the partition carried the same delivery id; else the
        record is remembered (a record read again after a seek is not its own copy)."""
        if self._window_ms <= 0:
            return False
        seen = self._seen.setdefault(partition, OrderedDict())
        while seen:  # oldest first: records arrive in offset order, timestamps about so
            _, (_, oldest) = next(iter(seen.items()))
            if oldest >= timestamp_ms - self._window_ms:
                break
            seen.popitem(last=False)
        first = seen.get(delivery_id)
        if first is None:
            seen[delivery_id] = (offset, timestamp_ms)
            return False
        return first[0] < offset

    def forget(self, partitions: Iterable[P]) -> None:
        for partition in partitions:
            self._seen.pop(partition, None)

    def __len__(self) -> int:
        return sum(len(seen) for seen in self._seen.values())


class DeliveredBefore:
    """Per partition number: (delivery id, attempt) → when it was made (unix ms), for the
    attempts the attempt log says were delivered, read back at assignment."""

    def __init__(self) -> None:
        self._delivered: dict[int, dict[tuple[str, int], int]] = {}

    def add(self, partition: int, attempt_log: bytes) -> bool:
        try:
            attempt = Attempt.from_bytes(attempt_log)
        except (orjson.JSONDecodeError, TypeError):
            return False  # not an attempt log line: nothing to learn from it
        if attempt.outcome != "delivered":
            return False
        self._delivered.setdefault(partition, {})[(attempt.delivery_id, attempt.attempt)] = (
            attempt.at
        )
        return True

    def covers(self, partition: int, delivery_id: str, attempt: int, written_ms: int) -> bool:
        """Was this attempt of this delivery delivered after the record asking for it was
        written? (An earlier success is another schedule's: a re-send is sent.)"""
        at = self._delivered.get(partition, {}).get((delivery_id, attempt))
        return at is not None and at >= written_ms

    def forget(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            self._delivered.pop(partition, None)


Remember = Callable[[TopicPartition, ConsumerRecord[bytes, bytes]], bool]


async def read_back(
    reader: AIOKafkaConsumer,
    until: dict[TopicPartition, int | None],
    window_ms: int,
    remember: Remember,
) -> int:
    """Hand ``remember`` each record of the last ``window_ms`` before each partition's offset
    in ``until`` (None: its end). Returns how many it kept; on a Kafka error, logs and returns
    what it had (what is missed costs duplicates, never a loss)."""
    if window_ms <= 0 or not until:
        return 0
    kept = 0
    try:
        latest = await reader.end_offsets([tp for tp, end in until.items() if end is None])
        ends = {tp: end if end is not None else latest[tp] for tp, end in until.items()}
        since = int(time.time() * 1000) - window_ms
        starts = await reader.offsets_for_times(dict.fromkeys(ends, since))
        pending = {tp: end for tp, end in ends.items() if (s := starts.get(tp)) and s.offset < end}
        reader.assign(list(pending))
        for tp in pending:
            reader.seek(tp, starts[tp].offset)
        deadline = time.monotonic() + READ_BACK_SECONDS
        while pending and time.monotonic() < deadline:
            batch = await reader.getmany(timeout_ms=1000, max_records=5000)
            for tp, records in batch.items():
                end = pending.get(tp, 0)
                kept += sum(remember(tp, r) for r in records if r.offset < end)
                if records and records[-1].offset + 1 >= end:
                    pending.pop(tp, None)
                    reader.pause(tp)
            if not batch:
                break  # nothing more below the ends (e.g. a gap left by a transaction marker)
    except KafkaError as exc:
        log.warning("recent records not read back; some may be sent again", error=repr(exc))
    finally:
        reader.assign([])
    return kept
