"""Reading and writing the endpoints topic (compacted, keyed by endpoint id, tombstone = delete).

Every worker holds the whole set in memory through an :class:`EndpointCache`: a consumer with
no group that reads the topic from the beginning and keeps following it, so fan-out and
senders never look anything up remotely and a change reaches every worker within about a
second.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from types import MappingProxyType

import structlog
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from pipeline.endpoints.model import Endpoint
from pipeline.exceptions import PublishError
from pipeline.kafka.connection import librdkafka_config
from pipeline.settings import Settings
from pipeline.topics import ENDPOINTS

log = structlog.get_logger(__name__)


class EndpointWriter:
    """Writes endpoint versions and tombstones, waiting for the broker's ack."""

    def __init__(self, settings: Settings) -> None:
        self._topic = settings.topic(ENDPOINTS)
        self._producer = Producer(
            {
                **librdkafka_config(settings),
                "enable.idempotence": True,
                "acks": "all",
            }
        )

    def put(self, endpoint: Endpoint) -> Endpoint:
        self._write(endpoint.id, endpoint.to_json())
        return endpoint

    def delete(self, endpoint_id: str) -> None:
        self._write(endpoint_id, None)

    def _write(self, key: str, value: bytes | None) -> None:
        errors: list[KafkaError] = []
        self._producer.produce(
            self._topic,
            key=key.encode(),
            value=value,
            on_delivery=lambda err, _msg: errors.append(err) if err else None,
        )
        if self._producer.flush(30) or errors:
            raise PublishError(f"endpoint {key} was not saved: {errors or 'timed out'}")


class EndpointCache:
    """An in-memory copy of every endpoint, kept current by a background consumer thread."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._topic = settings.topic(ENDPOINTS)
        self._by_id: dict[str, Endpoint] = {}
        self._by_account: dict[str, tuple[Endpoint, ...]] = {}
        self._accounts: dict[str, dict[str, Endpoint]] = {}  # written by the consumer thread only
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="endpoint-cache", daemon=True)

    # Reading (any thread) -------------------------------------------------------------

    def get(self, endpoint_id: str) -> Endpoint | None:
        return self._by_id.get(endpoint_id)

    def for_account(self, account_id: str) -> tuple[Endpoint, ...]:
        return self._by_account.get(account_id, ())

    def all(self) -> MappingProxyType[str, Endpoint]:
        return MappingProxyType(self._by_id)

    # Lifecycle ------------------------------------------------------------------------

    def start(self) -> EndpointCache:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until the topic has been read to its end once."""
        if not self._ready.wait(timeout):
            raise TimeoutError(f"endpoints topic {self._topic} not loaded within {timeout}s")

    async def wait_ready_async(self, seconds: float = 60.0) -> None:
        await asyncio.to_thread(self.wait_ready, seconds)

    # The consumer thread --------------------------------------------------------------

    def _apply(self, key: bytes, value: bytes | None) -> None:
        endpoint_id = key.decode()
        old = self._by_id.get(endpoint_id)
        if value is None:
            self._by_id.pop(endpoint_id, None)
            new = None
        else:
            try:
                new = Endpoint.from_json(value)
            except Exception as exc:  # a bad record must not stop the cache
                log.error(
                    "endpoint record unreadable, skipped", endpoint_id=endpoint_id, error=str(exc)
                )
                return
            self._by_id[endpoint_id] = new
        if old is not None:
            self._accounts.get(old.account_id, {}).pop(endpoint_id, None)
        if new is not None:
            self._accounts.setdefault(new.account_id, {})[endpoint_id] = new
        for account in {e.account_id for e in (old, new) if e is not None}:
            # Replace the tuple whole, so readers on other threads never see it half-built.
            self._by_account[account] = tuple(self._accounts.get(account, {}).values())

    def _run(self) -> None:
        consumer = Consumer(
            {
                **librdkafka_config(self._settings),
                "group.id": f"endpoint-cache-{uuid.uuid4().hex}",  # never joins nor commits
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                # the outbox relay writes in transactions: what a fenced relay wrote and could
                # not commit (an older version, maybe) is never seen
                "isolation.level": "read_committed",
            }
        )
        try:
            metadata = consumer.list_topics(self._topic, timeout=30)
            partitions = list(metadata.topics[self._topic].partitions)
            if not partitions:
                raise RuntimeError(f"endpoints topic {self._topic} does not exist")
            consumer.assign([TopicPartition(self._topic, p, OFFSET_BEGINNING) for p in partitions])
            pending = set(partitions)
            while not self._stop.is_set():
                message = consumer.poll(0.2)
                if message is None:
                    continue
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        pending.discard(message.partition() or 0)
                        if not pending:
                            self._ready.set()
                    else:
                        log.warning("endpoint cache consumer error", error=error.str())
                    continue
                key = message.key()
                if key is not None:
                    self._apply(key, message.value())
        except Exception:
            log.exception("endpoint cache stopped")
            raise
        finally:
            consumer.close()


def load_endpoints(settings: Settings, timeout: float = 30.0) -> dict[str, Endpoint]:
    """Read the whole endpoints topic once (for the CLI and tests)."""
    cache = EndpointCache(settings).start()
    try:
        cache.wait_ready(timeout)
        return dict(cache.all())
    finally:
        cache.stop()
