"""Kafka records of the deliveries and attempts topics as rows of the delivery log's tables.

Both tables are partitioned by day, and a batch's statements look rows up by delivery id: with
nothing else to go on, each lookup visits every day's partition (30 days: 30 index probes a row).
So every row carries a lower bound of the days its delivery can be in, taken from the event's
time, which every record of a delivery carries and which never changes (retries, redrives,
replays, a fan-out run again): a delivery's ``created_at`` is when the log first saw it, but never
earlier than :data:`CLOCK_SKEW_MS` before its event's time, so ``event_time - CLOCK_SKEW_MS``
bounds it from below by construction (no assumption about clocks is needed for correctness; the
margin only keeps ``created_at`` equal to the first sighting when a publisher's clock runs
ahead). The writer prunes with one bound per batch (the least of its rows): a constant the
planner prunes partitions with at plan time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import structlog

from pipeline.delivery.record import Attempt, Delivery

log = structlog.get_logger(__name__)

DeliveryRow = tuple[str, int, str, str, str, str, int, str]
"""delivery_id, created_at (ms), account_id, endpoint_id, event_id, event_type, event_time, body"""
CLOCK_SKEW_MS = 3_600_000
LAST_DAY_MS = 253_402_214_400_000
"""9999-12-31T00:00Z: a row dated later has no day partition (Python's dates end there)."""
AttemptRow = tuple[
    str, int, int, str, str, str, str, int | None, str | None, float, str, str, int | None
]
"""delivery_id, at (ms), attempt, account_id, endpoint_id, event_id, event_type, status, error,
latency_ms, response_excerpt, outcome, next_attempt_at (ms)"""


def since_ms(event_time: int) -> int:
    """The earliest ``created_at`` (ms) a delivery of an event at ``event_time`` can have."""
    return event_time - CLOCK_SKEW_MS


def _least(current: int | None, value: int) -> int:
    return value if current is None or value < current else current


def _text(value: str) -> str:
    """PostgreSQL's text holds no NUL: a partner's response excerpt may (one would fail the
    whole batch, forever)."""
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


@dataclass(slots=True)
class Rows:
    deliveries: list[DeliveryRow] = field(default_factory=list)
    attempts: list[AttemptRow] = field(default_factory=list)
    days_ms: set[int] = field(default_factory=set)
    """A timestamp (ms) in each UTC day the rows fall in (the partitions they need)."""
    skipped: int = 0
    """Records not written: unreadable, older than the retention, or dated past 9999."""
    cutoff_ms: int = 0
    deliveries_since_ms: int | None = None
    """No delivery of this batch's deliveries can have a row created before this."""
    deliveries_seen_ms: int | None = None
    """The earliest Kafka timestamp of this batch's deliveries (their attempts come later)."""
    attempts_since_ms: int | None = None
    """No delivery of this batch's attempts can have a row created before this; None when one
    came from a version that did not record its event's time (then every day is searched)."""
    _attempts_unbounded: bool = False
    _seen: set[str] = field(default_factory=set)

    def add_delivery(self, raw: bytes, timestamp_ms: int) -> None:
        delivery = Delivery.from_bytes(raw)
        created_ms = max(timestamp_ms, since_ms(delivery.event_time))
        if timestamp_ms < self.cutoff_ms:
            self.skipped += 1
            return
        if created_ms >= LAST_DAY_MS:
            self.skipped += 1
            log.warning(
                "delivery log: event time past 9999 skipped", delivery_id=delivery.delivery_id
            )
            return
        if delivery.delivery_id in self._seen:
            return  # seen again in this batch (a redrive): the first sighting stays
        self._seen.add(delivery.delivery_id)
        self.deliveries_since_ms = _least(self.deliveries_since_ms, since_ms(delivery.event_time))
        self.deliveries_seen_ms = _least(self.deliveries_seen_ms, timestamp_ms)
        self.deliveries.append(
            (
                delivery.delivery_id,
                created_ms,
                delivery.account_id,
                delivery.endpoint_id,
                delivery.event_id,
                delivery.event_type,
                delivery.event_time,
                _text(delivery.body.decode(errors="replace")),
            )
        )
        self.days_ms.add(created_ms // 86_400_000 * 86_400_000)

    def add_attempt(self, raw: bytes) -> None:
        a = Attempt.from_bytes(raw)
        if a.at < self.cutoff_ms:
            self.skipped += 1
            return
        if a.at >= LAST_DAY_MS:
            self.skipped += 1
            log.warning("delivery log: attempt time past 9999 skipped", delivery_id=a.delivery_id)
            return
        if a.event_time is None:
            self._attempts_unbounded = True
            self.attempts_since_ms = None
        elif not self._attempts_unbounded:
            self.attempts_since_ms = _least(self.attempts_since_ms, since_ms(a.event_time))
        self.attempts.append(
            (
                a.delivery_id,
                a.at,
                a.attempt,
                a.account_id,
                a.endpoint_id,
                a.event_id,
                a.event_type,
                a.status,
                None if a.error is None else _text(a.error),
                a.latency_ms,
                _text(a.response_excerpt),
                a.outcome,
                a.next_attempt_at,
            )
        )
        self.days_ms.add(a.at // 86_400_000 * 86_400_000)


def rows_of(
    records: Iterable[tuple[str, bytes | None, int]],
    *,
    deliveries_topic: str,
    attempts_topic: str,
    cutoff_ms: int,
) -> Rows:
    """``(topic, value, timestamp ms)`` records as rows. A record older than ``cutoff_ms`` (past
    retention: its partition may be gone) or unreadable by this version is counted in
    ``skipped`` (and logged when unreadable), never fatal."""
    rows = Rows(cutoff_ms=cutoff_ms)
    for topic, value, timestamp in records:
        if not value:
            continue  # a replay's fence (pipeline.delivery.copies): no delivery
        try:
            if topic == attempts_topic:
                rows.add_attempt(value)
            elif topic == deliveries_topic:
                rows.add_delivery(value, timestamp)
        except Exception as exc:  # a record this version cannot read is skipped, not fatal
            rows.skipped += 1
            log.warning("delivery log record skipped", topic=topic, error=repr(exc)[:300])
    return rows
