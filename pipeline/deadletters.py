"""The dead-letter topic: list what ended there, and redrive it into a fresh retry schedule."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from confluent_kafka import Producer

from pipeline.delivery.record import Delivery
from pipeline.exceptions import PublishError
from pipeline.kafka.config import producer_config
from pipeline.kafka.reading import read_to_end
from pipeline.settings import Settings
from pipeline.topics import DEAD_LETTERS, DELIVERIES


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetter:
    delivery: Delivery
    dead_lettered_at: int
    """Unix ms (the record's timestamp)."""


def read_dead_letters(
    settings: Settings, *, endpoint_id: str | None = None, since_ms: int = 0
) -> Iterator[DeadLetter]:
    """Every dead letter present now (oldest first per partition), filtered."""
    for message in read_to_end(settings, settings.topic(DEAD_LETTERS)):
        delivery = Delivery.from_bytes(message.value() or b"{}")
        at = message.timestamp()[1]
        if (endpoint_id is None or delivery.endpoint_id == endpoint_id) and at >= since_ms:
            yield DeadLetter(delivery=delivery, dead_lettered_at=at)


def redrive(settings: Settings, letters: list[DeadLetter]) -> int:
    """Send dead letters back to the deliveries topic at attempt 1 of a fresh schedule, with the
    same delivery id and webhook-id (receivers dedupe). Returns how many went."""
    return send_again(settings, [letter.delivery for letter in letters])


def send_again(settings: Settings, deliveries: list[Delivery]) -> int:
    """Put deliveries on the deliveries topic at attempt 1 of a fresh schedule (same delivery
    id and webhook-id), waiting for the broker's acks. Returns how many went."""
    producer = Producer(producer_config(settings))  # murmur2: the endpoint's own partition
    errors: list[str] = []
    for delivery in deliveries:
        fresh = delivery.replace(attempt=1, not_before=0, dead_letter_reason=None)
        producer.produce(
            settings.topic(DELIVERIES),
            key=fresh.endpoint_id.encode(),
            value=fresh.to_bytes(),
            on_delivery=lambda err, _m: errors.append(err.str()) if err else None,
        )
        producer.poll(0)
    if producer.flush(60) or errors:
        raise PublishError(f"sending again incomplete: {errors[:3] or 'timed out'}")
    return len(deliveries)
