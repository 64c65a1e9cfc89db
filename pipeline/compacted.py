"""A compacted topic used as a small key-value store: write with an ack, read it all into memory.

A compacted topic keyed by record id keeps the latest value of every key (a tombstone, ``None``,
deletes it). Readers need no database: a consumer with no group reads the topic from the
beginning into memory and keeps following it, and calls itself ready once it has reached the
end of every partition. Stores such as :mod:`pipeline.accounts` build on these two classes.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable

import structlog
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from pipeline.exceptions import PublishError
from pipeline.kafka.connection import librdkafka_config
from pipeline.settings import Settings

log = structlog.get_logger(__name__)


class CompactedWriter:
    """Writes values and tombstones to one topic, returning only once the broker acked them."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self._topic = topic
        self._producer = Producer(
            {
                **librdkafka_config(settings),
                "enable.idempotence": True,
                "acks": "all",
            }
        )

    def write(self, key: str, value: bytes | None, *, timeout: float = 30.0) -> None:
        errors: list[KafkaError] = []
        self._producer.produce(
            self._topic,
            key=key.encode(),
            value=value,
            on_delivery=lambda err, _msg: errors.append(err) if err else None,
        )
        if self._producer.flush(timeout) or errors:
            raise PublishError(f"{key} was not saved to {self._topic}: {errors or 'timed out'}")


class CompactedReader:
    """Feeds every record of a topic, from the beginning and then live, to ``apply(key, value)``.

    ``apply`` runs on the reader's own thread; it must keep the data it builds safe to read from
    other threads (replace whole values, never mutate what readers may hold).
    """

    def __init__(
        self, settings: Settings, topic: str, apply: Callable[[str, bytes | None], None]
    ) -> None:
        self._settings = settings
        self._topic = topic
        self._apply = apply
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"read-{topic}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until the topic has been read to its end once."""
        if not self._ready.wait(timeout):
            raise TimeoutError(f"topic {self._topic} not loaded within {timeout}s")

    async def wait_ready_async(self, seconds: float = 60.0) -> None:
        await asyncio.to_thread(self.wait_ready, seconds)

    def _run(self) -> None:
        consumer = Consumer(
            {
                **librdkafka_config(self._settings),
                "group.id": f"reader-{uuid.uuid4().hex}",  # never joins nor commits
                "enable.auto.commit": False,
                "enable.partition.eof": True,
            }
        )
        try:
            metadata = consumer.list_topics(self._topic, timeout=30)
            partitions = list(metadata.topics[self._topic].partitions)
            if not partitions:
                raise RuntimeError(f"topic {self._topic} does not exist")
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
                        log.warning("compacted reader error", topic=self._topic, error=error.str())
                    continue
                key = message.key()
                if key is not None:
                    self._apply(key.decode(), message.value())
        except Exception:
            log.exception("compacted reader stopped", topic=self._topic)
            raise
        finally:
            consumer.close()
