"""The quarantine topic: input the pipeline could not take (undecodable or invalid records),
and deliveries a bug of ours stopped too often, each kept untouched with where it came from
and why in its headers. ``velourcity quarantine list`` shows them, ``velourcity quarantine
redrive`` writes them back to the topic they came from (after a fix)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from confluent_kafka import Producer

from pipeline.exceptions import PublishError
from pipeline.kafka.config import producer_config
from pipeline.kafka.producer import Output
from pipeline.kafka.reading import read_to_end
from pipeline.settings import Settings
from pipeline.topics import QUARANTINE, pipeline_topics

REASON = "velourcity-quarantine-reason"
ERROR = "velourcity-quarantine-error"
SOURCE_TOPIC = "velourcity-source-topic"
SOURCE_PARTITION = "velourcity-source-partition"
SOURCE_OFFSET = "velourcity-source-offset"
AT = "velourcity-quarantined-at"


def quarantine_record(
    settings: Settings,
    *,
    value: bytes | None,
    key: bytes | None,
    topic: str,
    partition: int,
    offset: int,
    reason: str,
    error: str,
) -> Output:
    """The original bytes, untouched, with where they came from and why in the headers."""
    headers = (
        (REASON, reason.encode()),
        (ERROR, error[:1000].encode()),
        (SOURCE_TOPIC, topic.encode()),
        (SOURCE_PARTITION, str(partition).encode()),
        (SOURCE_OFFSET, str(offset).encode()),
        (AT, str(int(time.time() * 1000)).encode()),
    )
    return Output(settings.topic(QUARANTINE), key or b"", value or b"", headers)


@dataclass(frozen=True, slots=True, kw_only=True)
class Quarantined:
    """One quarantined record: its bytes, and where it came from and why."""

    offset: int
    """Its place in the quarantine topic (``partition:offset`` names it)."""
    partition: int
    key: bytes
    value: bytes
    reason: str
    error: str
    source_topic: str
    at: int
    """When it was quarantined, unix ms."""


def read_quarantine(
    settings: Settings, *, reason: str | None = None, since_ms: int = 0
) -> Iterator[Quarantined]:
    """Every quarantined record present now (oldest first per partition), filtered."""
    for message in read_to_end(settings, settings.topic(QUARANTINE)):
        headers = {
            name: value.decode(errors="replace") if isinstance(value, bytes) else str(value)
            for name, value in list(message.headers() or ())
        }
        record = Quarantined(
            offset=message.offset() or 0,
            partition=message.partition() or 0,
            key=message.key() or b"",
            value=message.value() or b"",
            reason=headers.get(REASON, ""),
            error=headers.get(ERROR, ""),
            source_topic=headers.get(SOURCE_TOPIC, ""),
            at=int(headers.get(AT) or message.timestamp()[1]),
        )
        if (reason is None or record.reason == reason) and record.at >= since_ms:
            yield record


def redrive(settings: Settings, records: list[Quarantined]) -> int:
    """Write quarantined records back, untouched, to the topic each came from (an event to
    its domain topic, a delivery to the deliveries topic), waiting for the broker's acks.
    Only the pipeline's own topics are written to. Returns how many went."""
    own = {spec.name for spec in pipeline_topics(settings)}
    unknown = sorted({r.source_topic for r in records} - own)
    if unknown:
        raise PublishError(f"not the pipeline's topics, nothing redriven: {', '.join(unknown)}")
    producer = Producer(producer_config(settings))
    errors: list[str] = []
    for record in records:
        producer.produce(
            record.source_topic,
            key=record.key or None,
            value=record.value,
            headers=[("velourcity-redriven-from", f"{record.partition}:{record.offset}".encode())],
            on_delivery=lambda err, _m: errors.append(err.str()) if err else None,
        )
        producer.poll(0)
    if producer.flush(60) or errors:
        raise PublishError(f"redrive not acknowledged: {errors[:3] or 'timed out'}")
    return len(records)
