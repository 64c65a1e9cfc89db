"""Delivery history, materialized from the deliveries and attempts topics, for the API and the
dashboard: every delivery of an account with its attempts, filters, cursors and per-minute
counts.

Kafka is the system of record; this is a view any API process rebuilds by reading the two
topics from ``now - retention`` and then following them, so every API process sees every
worker's attempts within about a poll interval. It lives in memory: at Velourcity's volume
(tens of millions of attempts in 30 days would need a database) the same interface would sit
on a store such as PostgreSQL fed by the same consumer.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

import structlog
from confluent_kafka import Consumer, KafkaError, TopicPartition

from pipeline.delivery.record import Attempt, Delivery
from pipeline.kafka.connection import librdkafka_config
from pipeline.kafka_retry import retrying
from pipeline.settings import Settings
from pipeline.topics import ATTEMPTS, DELIVERIES

log = structlog.get_logger(__name__)

Status = Literal["pending", "retrying", "delivered", "failed"]
FAILED_OUTCOMES = frozenset({"dead_lettered", "endpoint_disabled", "endpoint_deleted"})


@dataclass
class DeliveryView:
    delivery_id: str
    event_id: str
    event_type: str
    account_id: str
    endpoint_id: str
    created_at: int
    """When the delivery was first seen (unix ms): fan-out, redrive or a manual retry."""
    body: str | None = None
    """The exact body sent, once the delivery record was seen (None if it is out of reach)."""
    event_time: int | None = None
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def status(self) -> Status:
        if not self.attempts:
            return "pending"
        last = self.attempts[-1].outcome
        if last == "delivered":
            return "delivered"
        return "failed" if last in FAILED_OUTCOMES else "retrying"

    @property
    def next_attempt_at(self) -> int | None:
        return self.attempts[-1].next_attempt_at if self.status == "retrying" else None

    @property
    def updated_at(self) -> int:
        return self.attempts[-1].at if self.attempts else self.created_at

    def fresh_delivery(self) -> Delivery | None:
        """The delivery again, at attempt 1 of a fresh schedule, same delivery id and
        ``webhook-id``; None when its body is no longer known."""
        if self.body is None or self.event_time is None:
            return None
        return Delivery(
            delivery_id=self.delivery_id,
            event_id=self.event_id,
            event_type=self.event_type,
            account_id=self.account_id,
            endpoint_id=self.endpoint_id,
            body=self.body.encode(),
            event_time=self.event_time,
        )


@dataclass(frozen=True)
class Page:
    items: list[DeliveryView]
    next_cursor: str | None


class DeliveryHistory:
    """The view itself: thread-safe, fed by :class:`HistoryFollower` (or directly in tests)."""

    def __init__(self, *, retention_seconds: float) -> None:
        self._retention_ms = int(retention_seconds * 1000)
        self._lock = threading.Lock()
        # delivery id -> view, in order of first sight (ids are not time-ordered, sightings are)
        self._views: OrderedDict[str, DeliveryView] = OrderedDict()
        self._seq: dict[str, int] = {}
        self._next_seq = 0

    # Feeding ---------------------------------------------------------------------------------

    def add_delivery(self, delivery: Delivery, seen_at: int) -> None:
        with self._lock:
            view = self._view(delivery.delivery_id, delivery, seen_at)
            if view.body is None:
                view.body = delivery.body.decode(errors="replace")
                view.event_time = delivery.event_time

    def add_attempt(self, attempt: Attempt) -> None:
        with self._lock:
            view = self._view(attempt.delivery_id, attempt, attempt.at)
            key = (attempt.attempt, attempt.at, attempt.outcome)
            if all((a.attempt, a.at, a.outcome) != key for a in view.attempts):  # re-reads
                view.attempts.append(attempt)
                view.attempts.sort(key=lambda a: a.at)

    def _view(self, delivery_id: str, source: Delivery | Attempt, seen_at: int) -> DeliveryView:
        view = self._views.get(delivery_id)
        if view is None:
            view = DeliveryView(
                delivery_id=delivery_id,
                event_id=source.event_id,
                event_type=source.event_type,
                account_id=source.account_id,
                endpoint_id=source.endpoint_id,
                created_at=seen_at,
            )
            self._views[delivery_id] = view
            self._seq[delivery_id] = self._next_seq
            self._next_seq += 1
        return view

    def prune(self, now_ms: int) -> int:
        """Forget deliveries untouched for longer than the retention; return how many."""
        cutoff = now_ms - self._retention_ms
        with self._lock:
            old = [d for d, v in self._views.items() if v.updated_at < cutoff]
            for delivery_id in old:
                del self._views[delivery_id]
                del self._seq[delivery_id]
        return len(old)

    # Reading ---------------------------------------------------------------------------------

    def get(self, account_id: str, delivery_id: str) -> DeliveryView | None:
        with self._lock:
            view = self._views.get(delivery_id)
            return view if view is not None and view.account_id == account_id else None

    def page(
        self,
        account_id: str,
        *,
        endpoint_id: str | None = None,
        event_type: str | None = None,
        status: Status | None = None,
        since: int | None = None,
        until: int | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        """Newest first. ``cursor`` is the opaque ``next_cursor`` of the page before."""
        before = _decode_cursor(cursor)
        items: list[DeliveryView] = []
        with self._lock:
            for view in reversed(self._views.values()):
                seq = self._seq[view.delivery_id]
                if before is not None and seq >= before:
                    continue
                if not _matches(view, account_id, endpoint_id, event_type, status, since, until):
                    continue
                if len(items) == limit:
                    last = self._seq[items[-1].delivery_id]
                    return Page(items, f"c{last}")
                items.append(view)
        return Page(items, None)

    def matching(
        self, account_id: str, *, endpoint_id: str | None, status: Status, since: int
    ) -> list[DeliveryView]:
        """Every delivery of the filter, oldest first (for "recover since")."""
        with self._lock:
            return [
                v
                for v in self._views.values()
                if _matches(v, account_id, endpoint_id, None, status, since, None)
            ]

    def per_minute(
        self, account_id: str, *, endpoint_id: str | None, since: int
    ) -> dict[int, dict[str, int]]:
        """Attempts per minute (unix ms of the minute) by outcome."""
        buckets: dict[int, dict[str, int]] = {}
        with self._lock:
            for view in self._views.values():
                if view.account_id != account_id or (
                    endpoint_id and view.endpoint_id != endpoint_id
                ):
                    continue
                for attempt in view.attempts:
                    if attempt.at >= since:
                        minute = attempt.at // 60_000 * 60_000
                        counts = buckets.setdefault(minute, {})
                        counts[attempt.outcome] = counts.get(attempt.outcome, 0) + 1
        return dict(sorted(buckets.items()))

    def __len__(self) -> int:
        with self._lock:
            return len(self._views)


def _matches(
    view: DeliveryView,
    account_id: str,
    endpoint_id: str | None,
    event_type: str | None,
    status: Status | None,
    since: int | None,
    until: int | None,
) -> bool:
    return (
        view.account_id == account_id
        and (endpoint_id is None or view.endpoint_id == endpoint_id)
        and (event_type is None or view.event_type == event_type)
        and (status is None or view.status == status)
        and (since is None or view.created_at >= since)
        and (until is None or view.created_at < until)
    )


def _decode_cursor(cursor: str | None) -> int | None:
    if not cursor:
        return None
    if not (cursor.startswith("c") and cursor[1:].isdigit()):
        raise ValueError("cursor: not a cursor this API gave out")
    return int(cursor[1:])


class HistoryFollower:
    """Reads the deliveries and attempts topics from ``now - retention`` into a
    :class:`DeliveryHistory`, then follows them; ready once it has reached their ends."""

    def __init__(self, settings: Settings, history: DeliveryHistory, retention_seconds: float):
        self._settings = settings
        self._history = history
        self._retention_ms = int(retention_seconds * 1000)
        self._deliveries = settings.topic(DELIVERIES)
        self._attempts = settings.topic(ATTEMPTS)
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="history", daemon=True)

    def start(self) -> HistoryFollower:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def wait_ready(self, timeout: float = 60.0) -> None:
        if not self._ready.wait(timeout):
            raise TimeoutError(f"delivery history not loaded within {timeout}s")

    def _run(self) -> None:
        consumer = Consumer(
            {
                **librdkafka_config(self._settings),
                "group.id": f"history-{uuid.uuid4().hex}",  # assigned, never joins nor commits
                "enable.auto.commit": False,
                "enable.partition.eof": True,
            }
        )
        try:
            start = int(time.time() * 1000) - self._retention_ms
            wanted = list(self._partitions(consumer, start))
            offsets = retrying(
                lambda: consumer.offsets_for_times(wanted, timeout=30), what="history offsets"
            )
            consumer.assign(offsets)
            pending = {(tp.topic, tp.partition) for tp in offsets}
            last_prune = time.monotonic()
            while not self._stop.is_set():
                message = consumer.poll(0.2)
                if time.monotonic() - last_prune > 60:
                    self._history.prune(int(time.time() * 1000))
                    last_prune = time.monotonic()
                if message is None:
                    continue
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        pending.discard((message.topic() or "", message.partition() or 0))
                        if not pending:
                            self._ready.set()
                    else:
                        log.warning("history reader error", error=error.str())
                    continue
                self._apply(message.topic() or "", message.value() or b"", message.timestamp()[1])
        except Exception:
            log.exception("history reader stopped")
            raise
        finally:
            consumer.close()

    def _partitions(self, consumer: Consumer, start_ms: int) -> Iterator[TopicPartition]:
        for topic in (self._deliveries, self._attempts):
            metadata = consumer.list_topics(topic, timeout=30).topics[topic]
            if metadata.error is not None:
                raise RuntimeError(f"topic {topic}: {metadata.error.str()}")
            for partition in metadata.partitions:
                yield TopicPartition(topic, partition, start_ms)

    def _apply(self, topic: str, value: bytes, timestamp: int) -> None:
        if not value:
            return  # a replay's fence (pipeline.delivery.copies): no delivery
        try:
            if topic == self._attempts:
                self._history.add_attempt(Attempt.from_bytes(value))
            else:
                self._history.add_delivery(Delivery.from_bytes(value), timestamp)
        except Exception as exc:  # a record this version cannot read is skipped, not fatal
            log.warning("history record skipped", topic=topic, error=repr(exc)[:300])
