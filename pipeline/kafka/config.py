"""The librdkafka configurations of the pipeline's producers and consumers, on top of the
connection (:mod:`.connection`: bootstrap, TLS, SASL, extra properties)."""

from __future__ import annotations

from typing import Any

from pipeline.kafka.connection import librdkafka_config
from pipeline.settings import Settings

MAX_RECORD_BYTES = 8 * 1024 * 1024


def producer_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """An idempotent producer that waits for every in-sync replica (``acks=all``): no record
    is reported sent unless it is durable, none is duplicated by the client's own retries."""
    return librdkafka_config(
        settings,
        **{
            "enable.idempotence": True,
            "acks": "all",
            # murmur2, as Java's clients and aiokafka (Faust) partition: a key maps to the same
            # partition whichever producer writes it (librdkafka's default is CRC32)
            "partitioner": "murmur2_random",
            "linger.ms": 2,
            "message.max.bytes": MAX_RECORD_BYTES,
            # a record not acknowledged within this fails (the sender produces it again; the
            # fan-out stops the worker before it acks the events), instead of waiting forever
            "message.timeout.ms": 60_000,
        }
        | overrides,
    )


def consumer_config(settings: Settings, *, group: str, **overrides: Any) -> dict[str, Any]:
    """A group consumer that commits only what its owner says is done (no auto-commit, no
    auto offset store), reading a new group from the beginning."""
    return librdkafka_config(
        settings,
        **{
            "group.id": group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": int(settings.session_timeout * 1000),
            "heartbeat.interval.ms": int(settings.session_timeout * 250),
            # a revoke waits for the attempts in flight (up to the HTTP timeout) before it returns
            "max.poll.interval.ms": 300_000,
            # what librdkafka fetches ahead, per partition: enough for full batches, bounded memory
            "queued.max.messages.kbytes": 8192,
            "fetch.wait.max.ms": 100,
        }
        | overrides,
    )
