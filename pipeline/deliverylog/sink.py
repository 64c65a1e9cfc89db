"""The log sink: a consumer group (``<prefix>log-sink``) that writes the deliveries and attempts
topics into the delivery log in PostgreSQL.

One batch at a time: consume, write in one transaction, then commit the offsets. So a record is
committed in Kafka only once it is committed in the database (at-least-once into the database;
the writer's keys make a batch written twice add nothing). While the database is down the sink
seeks back to the start of the batch it could not write, waits (backing off up to
:data:`MAX_BACKOFF` seconds) and tries again: nothing is committed, nothing is lost, and the
hot path never notices. It runs inside ``velourcity api`` (unless ``--no-sink``) or alone as
``velourcity log-sink``; however many run, they share the topics as one group.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

import psycopg
import structlog
from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from pipeline.db import connect, migrate, unavailable_as_error
from pipeline.deliverylog.partitions import cutoff_ms
from pipeline.deliverylog.rows import rows_of
from pipeline.deliverylog.writer import LogWriter
from pipeline.exceptions import DatabaseUnavailable
from pipeline.kafka.config import consumer_config
from pipeline.settings import Settings
from pipeline.topics import ATTEMPTS, DELIVERIES

log = structlog.get_logger(__name__)

GROUP = "log-sink"
BATCH = 5000
MAX_BACKOFF = 5.0
MAINTENANCE_SECONDS = 600.0
"""How often partitions are created ahead and expired ones dropped."""


class LogSink:
    def __init__(self, settings: Settings, *, batch: int = BATCH) -> None:
        self._settings = settings
        self._batch = batch
        self._deliveries = settings.topic(DELIVERIES)
        self._attempts = settings.topic(ATTEMPTS)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._writer = LogWriter()
        self._conn: psycopg.Connection[Any] | None = None
        self._migrated = False
        self._next_maintenance = 0.0

    # Running --------------------------------------------------------------------------

    def start(self) -> LogSink:
        """Run in a thread of this process (the API's way)."""
        self._thread = threading.Thread(target=self._run_logged, name="log-sink", daemon=True)
        self._thread.start()
        return self

    def _run_logged(self) -> None:
        try:
            self.run()
        except Exception:  # a bug of ours: said loudly (the API goes on; its log stops growing)
            log.exception("log sink stopped by an error")
            raise

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout)

    def run(self) -> None:
        """Consume and write until :meth:`stop` (blocking; ``velourcity log-sink``'s way)."""
        consumer = Consumer(consumer_config(self._settings, group=self._settings.group(GROUP)))
        consumer.subscribe([self._deliveries, self._attempts])
        log.info("log sink started", group=self._settings.group(GROUP))
        backoff = 0.0
        try:
            while not self._stop.is_set():
                messages = self._consume(consumer)
                try:
                    self._maintain_if_due()
                    if messages:
                        self._write(messages)
                except (DatabaseUnavailable, psycopg.Error) as exc:
                    self._rewind(consumer, messages)
                    self._disconnect()
                    backoff = min(MAX_BACKOFF, backoff * 2 or 0.2)
                    if isinstance(exc, DatabaseUnavailable):
                        log.warning("delivery log not written; retrying", error=str(exc))
                    else:  # not the connection: a bug of ours or a refused row; visible, alive
                        log.error("delivery log write failed; retrying", exc_info=exc)
                    self._stop.wait(backoff)
                    continue
                if backoff:
                    log.info("delivery log written again after the database came back")
                    backoff = 0.0
                self._commit(consumer, messages)
        finally:
            consumer.close()
            self._disconnect()
            log.info("log sink stopped")

    def request_stop(self) -> None:
        """Ask :meth:`run` to return after the batch in hand (from a signal handler)."""
        self._stop.set()

    # Steps ----------------------------------------------------------------------------

    def _consume(self, consumer: Consumer) -> list[Message]:
        messages = consumer.consume(self._batch, timeout=0.5)
        good = []
        for m in messages:
            error = m.error()
            if error is None:
                good.append(m)
            else:
                log.warning("log sink consumer error", error=error.str())
        return good

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            if not self._migrated:
                for migration in migrate(self._settings):
                    log.info("database migrated", applied=migration.label)
                self._migrated = True
            self._conn = connect(self._settings, autocommit=True)
            self._writer.forget_partitions()
        return self._conn

    def _disconnect(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None

    def _maintain_if_due(self) -> None:
        if time.monotonic() < self._next_maintenance:
            return
        with unavailable_as_error("delivery log partitions"):
            dropped = self._writer.maintain(
                self._connection(), _now_ms(), self._settings.history_retention_days
            )
        if dropped:
            log.info("delivery log partitions dropped (past retention)", partitions=dropped)
        self._next_maintenance = time.monotonic() + MAINTENANCE_SECONDS

    def _write(self, messages: list[Message]) -> None:
        rows = rows_of(
            ((m.topic() or "", m.value(), m.timestamp()[1]) for m in messages),
            deliveries_topic=self._deliveries,
            attempts_topic=self._attempts,
            cutoff_ms=cutoff_ms(_now_ms(), self._settings.history_retention_days),
        )
        with unavailable_as_error("delivery log write"):
            self._writer.write(self._connection(), rows)

    def _rewind(self, consumer: Consumer, messages: list[Message]) -> None:
        """Read the batch again next time: back to its first offset in each partition."""
        first: dict[tuple[str, int], int] = {}
        for m in messages:
            key = (m.topic() or "", m.partition() or 0)
            offset = m.offset() or 0
            first[key] = min(first.get(key, offset), offset)
        for (topic, partition), offset in first.items():
            try:
                consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException as exc:  # not ours any more: its next owner reads it
                log.info("no seek back", topic=topic, partition=partition, error=str(exc))

    def _commit(self, consumer: Consumer, messages: list[Message]) -> None:
        last: dict[tuple[str, int], int] = {}
        for m in messages:
            key = (m.topic() or "", m.partition() or 0)
            last[key] = max(last.get(key, -1), m.offset() or 0)
        if not last:
            return
        offsets = [TopicPartition(t, p, o + 1) for (t, p), o in last.items()]
        try:
            consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:  # a rebalance: the next owner writes them again (no dups)
            log.warning("log sink offsets not committed", error=str(exc))


def _now_ms() -> int:
    return int(time.time() * 1000)


def run_log_sink(settings: Settings) -> None:
    """``velourcity log-sink``: the sink alone, until SIGINT or SIGTERM."""
    import signal

    sink = LogSink(settings)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: sink.request_stop())
    sink.run()
