"""The publisher SDK for domain services: validated Avro events onto the domain topics.

    with Publisher(load_settings()) as publisher:
        publisher.publish(sample_event("order.created", "acct_1"))       # blocks until acked

    with Publisher(settings) as publisher:                                # high volume
        for event in events:
            publisher.send(event)                                         # buffered, batched
        publisher.flush()                                                 # raises if any failed

The producer is idempotent with ``acks=all``; records are keyed by order id, so one order's
events stay in order; the event type and id travel in headers too. An event that does not fit
its schema raises :class:`~pipeline.exceptions.InvalidEvent` and nothing is sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from pipeline import tracing
from pipeline.events.codec import encode
from pipeline.events.registry import SchemaRegistry, default_registry
from pipeline.events.types import check_event_type, domain_topic_name
from pipeline.exceptions import InvalidEvent, PublishError
from pipeline.kafka.connection import librdkafka_config
from pipeline.settings import Settings


@dataclass(frozen=True, slots=True, kw_only=True)
class Published:
    event_id: str
    event_type: str
    topic: str
    partition: int
    offset: int


class Publisher:
    def __init__(
        self,
        settings: Settings,
        *,
        registry: SchemaRegistry | None = None,
        config: dict[str, Any] | None = None,
    ) -> None:
        self._settings = settings
        self._registry = registry or default_registry()
        if settings.otlp_endpoint and not tracing.enabled():
            tracing.configure(settings, "velourcity-publisher")
        self._producer = Producer(
            {
                **librdkafka_config(settings),
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "compression.type": "lz4",
                "message.max.bytes": 8 * 1024 * 1024,
                # Undeliverable records fail after this long instead of waiting forever;
                # their failure reaches flush() / publish() as a PublishError.
                "message.timeout.ms": 120_000,
            }
            | (config or {})
        )
        self._published: list[Published] = []
        self._failures: list[str] = []
        self._failed: list[str] = []
        self._pending: dict[str, int] = {}
        """Event id -> records of it not yet reported on (to name the unacknowledged)."""

    def encode(self, event: dict[str, Any]) -> tuple[str, bytes, bytes]:
        """Validate and encode ``event``; return ``(topic, key, value)``. Raises InvalidEvent."""
        if not isinstance(event, dict):
            raise InvalidEvent(f"an event is a dict envelope, not {type(event).__name__}")
        try:
            event_type = check_event_type(str(event.get("type")))
            order_id = event["data"]["order_id"]
        except (KeyError, TypeError) as exc:
            raise InvalidEvent("an event needs data.order_id (the partition key)") from exc
        value = encode(event, self._registry.current(event_type))
        return domain_topic_name(self._settings, event_type), str(order_id).encode(), value

    def send(self, event: dict[str, Any]) -> None:
        """Validate, encode and hand ``event`` to the producer's buffer; :meth:`flush` reports."""
        topic, key, value = self.encode(event)
        headers = [
            ("velourcity-event-type", event["type"].encode()),
            ("velourcity-event-id", event["id"].encode()),
        ]
        inherited = tracing.caller_traceparent()
        if tracing.enabled():
            attributes = {"velourcity.event_id": event["id"], "messaging.destination.name": topic}
            with tracing.span(f"publish {event['type']}", inherited, "PRODUCER", attributes) as s:
                inherited = tracing.traceparent_of(s, inherited)
        if inherited is not None:
            headers.append((tracing.HEADER, inherited.encode()))

        event_id = event["id"]

        def on_delivery(error: KafkaError | None, message: Message) -> None:
            left = self._pending.get(event_id, 1) - 1
            if left > 0:
                self._pending[event_id] = left
            else:
                self._pending.pop(event_id, None)
            if error is not None:
                self._failures.append(f"{event_id}: {error.str()}")
                self._failed.append(event_id)
            else:
                self._published.append(
                    Published(
                        event_id=event["id"],
                        event_type=event["type"],
                        topic=message.topic() or topic,
                        partition=message.partition() or 0,
                        offset=message.offset() or 0,
                    )
                )

        while True:
            try:
                self._producer.produce(
                    topic, value=value, key=key, headers=headers, on_delivery=on_delivery
                )
                self._pending[event_id] = self._pending.get(event_id, 0) + 1
                break
            except BufferError:  # local queue full: let delivery reports drain it
                self._producer.poll(0.1)
        self._producer.poll(0)

    def flush(self, timeout: float = 130.0) -> list[Published]:
        """Wait for every buffered event; return what was acked, raise if any was not."""
        remaining = self._producer.flush(timeout)
        published, failures, failed = self._published, self._failures, self._failed
        self._published, self._failures, self._failed = [], [], []
        if remaining:
            failures.append(f"{remaining} events still unacknowledged after {timeout}s")
            failed += list(self._pending)  # still in the buffer: their report may come later
        if failures:
            raise PublishError(
                f"{len(failures)} events were not acknowledged by the broker: "
                + "; ".join(failures[:5]),
                failed=failed,
                published=published,
            )
        return published

    def publish(self, event: dict[str, Any], timeout: float = 130.0) -> Published:
        """Send one event and block until the broker acknowledges it."""
        self.send(event)
        return self.flush(timeout)[-1]

    def close(self, timeout: float = 130.0) -> None:
        self.flush(timeout)

    def __enter__(self) -> Publisher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self._producer.flush(5)
