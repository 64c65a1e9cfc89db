"""The outbox relay: committed control-plane changes to the compacted topics, at least once.

It reads the unsent outbox rows in id order, produces them (idempotent producer, ``acks=all``),
waits for every ack, and only then marks them sent. A relay killed between the produce and the
mark produces those rows again when it (or another) starts: a compacted topic keyed by record id
with whole records makes the repeat harmless. While Kafka is down, produce fails after
``PRODUCE_TIMEOUT_MS`` and the same rows are tried again with backoff: nothing unacked is marked.

One relay at a time: each holds a session advisory lock on its own connection; the others retry
the lock every second, so when the holder dies (its connection with it) another takes over.
Every API process runs one (in a thread), and ``velourcity outbox-relay`` runs one alone.

A relay that lost its connection (and so the lock) may still be alive with a batch produced but
not yet marked sent, while the next holder produces the same rows and newer ones. So that it
cannot land an older version of an endpoint after a newer one, each batch is one Kafka
transaction of a producer with one fixed ``transactional.id`` per environment, initialized under
the lock before the relay reads any row: the next holder's ``init_transactions`` fences the old
producer (its open transaction is aborted, its produce and commit refused), and the readers of
the compacted topics read ``read_committed`` (librdkafka's default, set explicitly in
:class:`~pipeline.endpoints.store.EndpointCache`). What the old relay committed before that is
older than anything the new one produces.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from typing import Any, Literal

import psycopg
import structlog
from confluent_kafka import KafkaError, KafkaException, Producer

from pipeline.controlplane.store import NOTIFY_CHANNEL
from pipeline.db import connect
from pipeline.exceptions import DatabaseUnavailable, PublishError
from pipeline.kafka.config import producer_config
from pipeline.settings import Settings

log = structlog.get_logger(__name__)

RELAY_LOCK = 0x6F75_7462  # "outb": the relay's advisory lock key, the same in every process
BATCH = 500
POLL_SECONDS = 0.1
"""Longest wait for new rows when no notification comes (LISTEN wakes it sooner)."""
PRODUCE_TIMEOUT_MS = 10_000
MAX_BACKOFF = 5.0
KEEP_SENT = "1 day"
"""Sent rows are kept this long (to look at), then deleted, at most every CLEAN_EVERY s."""
CLEAN_EVERY = 60.0
TRANSACTIONAL_ID = "velourcity-outbox-relay"
"""With the prefix: one per environment, the same in every relay, so each fences the one before."""
Fault = Literal["kill-before-produce", "kill-before-commit", "kill-after-produce"]
FAULTS: tuple[Fault, ...] = ("kill-before-produce", "kill-before-commit", "kill-after-produce")
"""Test hooks (``velourcity outbox-relay --fault``): SIGKILL this process with rows read, before
producing them, with them produced and acked but their transaction not committed, or after the
commit but before marking them sent."""


class OutboxRelay:
    def __init__(self, settings: Settings, *, fault: Fault | None = None) -> None:
        self._settings = settings
        self._fault = fault
        self._producer = self._new_producer()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.run, name="outbox-relay", daemon=True)
        self.sent = 0
        self._cleaned = 0.0
        """Rows produced and marked sent by this relay (for logs and tests)."""

    def _new_producer(self) -> Producer:
        # the pipeline's producer (idempotent, acks=all, murmur2: a key lands on the partition
        # every other writer of the compacted topics puts it on), with a shorter timeout, and
        # transactional; initialized at its first batch (not here: the broker may be down, and
        # it must be under the lock)
        self._initialized = False
        overrides = {
            "message.timeout.ms": PRODUCE_TIMEOUT_MS,
            "transactional.id": self._settings.group(TRANSACTIONAL_ID),
        }
        return Producer(producer_config(self._settings, **overrides))

    def start(self) -> OutboxRelay:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(PRODUCE_TIMEOUT_MS / 1000 + 5)

    def run(self) -> None:
        """Relay until :meth:`stop`: take the lock, then drain the outbox as rows come."""
        backoff = 0.1
        while not self._stop.is_set():
            try:
                with connect(self._settings, autocommit=True) as conn:
                    while not _try_lock(conn):  # another relay holds it
                        if self._stop.wait(1.0):
                            return
                    log.info("outbox relay started")
                    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    while not self._stop.is_set():
                        if self.relay_batch(conn) < BATCH:
                            _wait_for_notify(conn)
                        backoff = 0.1
            except (DatabaseUnavailable, psycopg.Error, PublishError) as exc:
                log.warning("outbox relay: retrying", error=str(exc), after_seconds=backoff)
                if isinstance(exc, PublishError):  # a fresh producer: no state left from it
                    self._producer = self._new_producer()
                self._stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
        self._producer.flush(5)

    def relay_batch(self, conn: psycopg.Connection[Any]) -> int:
        """Produce one batch of unsent rows in order and mark them sent; how many. The caller
        holds the relay lock on ``conn``."""
        if not self._initialized:
            # Before reading rows, under the lock: any relay that takes the lock after this
            # one initializes after it too, and so fences it (a zombie relay cannot commit).
            try:
                self._producer.init_transactions(PRODUCE_TIMEOUT_MS / 1000 + 5)
            except KafkaException as exc:
                raise PublishError(f"outbox relay: no transactional producer: {exc}") from exc
            self._initialized = True
        rows = conn.execute(
            "SELECT id, topic, key, value FROM outbox WHERE sent_at IS NULL ORDER BY id LIMIT %s",
            (BATCH,),
        ).fetchall()
        if not rows:
            return 0
        self._maybe_fault("kill-before-produce")
        try:
            self._produce_in_transaction(rows)
        except (KafkaException, SystemError) as exc:  # fenced, timed out, broker down
            # (SystemError: confluent-kafka's callbacks once the producer is fenced, a fatal
            # error). Nothing of the batch is committed; a fresh producer tries it again.
            raise PublishError(f"{len(rows)} outbox rows not committed: {exc}") from exc
        self._maybe_fault("kill-after-produce")
        conn.execute(
            "UPDATE outbox SET sent_at = now() WHERE id = ANY(%s)", ([row[0] for row in rows],)
        )
        self.sent += len(rows)
        if time.monotonic() - self._cleaned > CLEAN_EVERY:
            conn.execute("DELETE FROM outbox WHERE sent_at < now() - %s::interval", (KEEP_SENT,))
            self._cleaned = time.monotonic()
        return len(rows)

    def _produce_in_transaction(self, rows: list[tuple[Any, ...]]) -> None:
        timeout = PRODUCE_TIMEOUT_MS / 1000 + 5
        self._producer.begin_transaction()
        errors: list[KafkaError] = []
        for _id, topic, key, value in rows:
            self._producer.produce(
                self._settings.topic(topic),
                key=key.encode(),
                value=bytes(value) if value is not None else None,
                on_delivery=lambda err, _msg: errors.append(err) if err else None,
            )
        if self._producer.flush(timeout) or errors:
            with contextlib.suppress(KafkaException):
                self._producer.abort_transaction(timeout)
            raise PublishError(f"{len(rows)} outbox rows not acknowledged: {errors[:1]}")
        self._maybe_fault("kill-before-commit")
        self._producer.commit_transaction(timeout)

    def _maybe_fault(self, where: Fault) -> None:
        if self._fault == where:
            log.warning("outbox relay: fault injected", fault=where)
            os.kill(os.getpid(), signal.SIGKILL)


def _try_lock(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (RELAY_LOCK,)).fetchone()
    return bool(row and row[0])


def _wait_for_notify(conn: psycopg.Connection[Any]) -> None:
    for _ in conn.notifies(timeout=POLL_SECONDS, stop_after=1):
        pass


def flush_outbox(settings: Settings, timeout: float = 30.0) -> bool:
    """Have every row now in the outbox produced before returning: here, when no relay runs
    (the lock is free), else by the relay that holds it. For commands such as ``velourcity
    endpoints create`` that must not return before the workers can see their change. False:
    not all produced within ``timeout`` (they stay in the outbox; a relay sends them later)."""
    with connect(settings, autocommit=True) as conn:
        row = conn.execute("SELECT max(id) FROM outbox WHERE sent_at IS NULL").fetchone()
        last = row[0] if row else None
        deadline = time.monotonic() + timeout
        while last is not None and time.monotonic() < deadline:
            if _try_lock(conn):
                try:
                    relay = OutboxRelay(settings)
                    while relay.relay_batch(conn) == BATCH:
                        pass
                    return True
                finally:
                    conn.execute("SELECT pg_advisory_unlock(%s)", (RELAY_LOCK,))
            pending = conn.execute(
                "SELECT 1 FROM outbox WHERE sent_at IS NULL AND id <= %s LIMIT 1", (last,)
            ).fetchone()
            if pending is None:
                return True
            time.sleep(POLL_SECONDS)
        return last is None


def run_relay(settings: Settings, *, fault: Fault | None = None) -> None:
    """``velourcity outbox-relay``: relay in the foreground until SIGTERM or Ctrl-C (and write
    back the endpoints workers disabled, as the API does)."""
    from pipeline.controlplane.writeback import WorkerDisables

    relay = OutboxRelay(settings, fault=fault)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    relay.start()
    disables = WorkerDisables(settings).start()
    stop.wait()
    disables.stop()
    relay.stop()
