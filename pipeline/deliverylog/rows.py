"""Kafka records of the deliveries and attempts topics as rows of the delivery log's tables."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import structlog

from pipeline.delivery.record import Attempt, Delivery

log = structlog.get_logger(__name__)

DeliveryRow = tuple[str, int, str, str, str, str, int, str]
"""delivery_id, created_at (ms), account_id, endpoint_id, event_id, event_type, event_time, body"""
AttemptRow = tuple[
    str, int, int, str, str, str, str, int | None, str | None, float, str, str, int | None
]
"""delivery_id, at (ms), attempt, account_id, endpoint_id, event_id, event_type, status, error,
latency_ms, response_excerpt, outcome, next_attempt_at (ms)"""


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
    """Records not written: unreadable, or older than the retention."""
    cutoff_ms: int = 0
    _seen: set[str] = field(default_factory=set)

    def add_delivery(self, raw: bytes, timestamp_ms: int) -> None:
        delivery = Delivery.from_bytes(raw)
        if timestamp_ms < self.cutoff_ms:
            self.skipped += 1
            return
        if delivery.delivery_id in self._seen:
            return  # seen again in this batch (a redrive): the first sighting stays
        self._seen.add(delivery.delivery_id)
        self.deliveries.append(
            (
                delivery.delivery_id,
                timestamp_ms,
                delivery.account_id,
                delivery.endpoint_id,
                delivery.event_id,
                delivery.event_type,
                delivery.event_time,
                _text(delivery.body.decode(errors="replace")),
            )
        )
        self.days_ms.add(timestamp_ms // 86_400_000 * 86_400_000)

    def add_attempt(self, raw: bytes) -> None:
        a = Attempt.from_bytes(raw)
        if a.at < self.cutoff_ms:
            self.skipped += 1
            return
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
