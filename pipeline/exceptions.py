"""Every error the pipeline raises on purpose descends from :class:`VelourcityError`.

    VelourcityError
    ├── ConfigurationError          settings that cannot work (bad schedule, bad CIDR)
    ├── KafkaConnectionError        no broker accepts us: unreachable, auth failed, TLS untrusted
    ├── InvalidInput                a caller gave us something we refuse; the message says why
    │   ├── InvalidEvent            an event that does not fit its Avro schema
    │   ├── InvalidEndpoint         an endpoint field that is not acceptable
    │   │   └── UnsafeURL           an endpoint URL whose target is refused (SSRF guard)
    │   ├── InvalidAccount          an account field that is not acceptable
    │   └── UnknownEventType        an event type name that does not exist
    ├── DecodeError                 bytes from Kafka that are not a readable event
    │   ├── MissingHeader           not Avro single-object encoded (no C3 01 marker)
    │   ├── UnknownFingerprint      written with a schema that is not in schemas/
    │   └── CorruptPayload          truncated or corrupt Avro body
    ├── PublishError                the broker did not acknowledge a record
    ├── BrokerUnavailable           the broker did not answer a read in time (the import, ...)
    ├── DatabaseUnavailable         PostgreSQL cannot be reached (or refused the connection)
    ├── StaleVersion(current)       a conditional write (If-Match) named a version not current
    ├── Conflict                    a create named a record that exists: nothing was written
    └── DeliveryOutcome             steers the sender; not a bug (see pipeline.delivery)
        ├── RetryLater(after_seconds)
        └── GiveUp(reason)

Bugs are left as the built-in exceptions they are; nothing here wraps them.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BrokerUnavailable",
    "ConfigurationError",
    "Conflict",
    "CorruptPayload",
    "DatabaseUnavailable",
    "DecodeError",
    "DeliveryOutcome",
    "GiveUp",
    "InvalidAccount",
    "InvalidEndpoint",
    "InvalidEvent",
    "InvalidInput",
    "KafkaConnectionError",
    "MissingHeader",
    "PublishError",
    "RetryLater",
    "StaleVersion",
    "UnknownEventType",
    "UnknownFingerprint",
    "UnsafeURL",
    "VelourcityError",
]


class VelourcityError(Exception):
    """Root of the pipeline's own errors."""


class ConfigurationError(VelourcityError):
    """A setting has a value the pipeline cannot work with."""


class KafkaConnectionError(VelourcityError):
    """No broker answered with these settings; the message names why, in one line."""


class InvalidInput(VelourcityError, ValueError):
    """Input refused with a message that says what was wrong and what is accepted."""


class InvalidEvent(InvalidInput):
    """An event that does not validate against its schema."""


class InvalidEndpoint(InvalidInput):
    """An endpoint field (URL, event types, secret, ...) that is not acceptable."""


class UnsafeURL(InvalidEndpoint):
    """An endpoint URL that points at a refused network (loopback, private, metadata, ...)."""


class InvalidAccount(InvalidInput):
    """An account field (its name, ...) that is not acceptable."""


class UnknownEventType(InvalidInput):
    """An event type name that is not one of the published event types."""


class DecodeError(VelourcityError):
    """Bytes read from Kafka that cannot be decoded into an event; ``reason`` names the cause."""

    reason = "undecodable"


class MissingHeader(DecodeError):
    reason = "missing_header"


class UnknownFingerprint(DecodeError):
    reason = "unknown_fingerprint"


class CorruptPayload(DecodeError):
    reason = "corrupt_payload"


class PublishError(VelourcityError):
    """The broker refused or did not acknowledge a produced record. ``failed`` holds the ids
    of the events not acknowledged, ``published`` what was (nothing is dropped unsaid)."""

    def __init__(
        self, message: str, *, failed: list[str] | None = None, published: list[Any] | None = None
    ) -> None:
        super().__init__(message)
        self.failed = failed or []
        self.published = published or []


class BrokerUnavailable(VelourcityError):
    """Kafka did not answer in time where the pipeline reads it outside the hot path (the
    one-time import of the compacted topics, ...); nothing was changed."""


class DatabaseUnavailable(VelourcityError):
    """PostgreSQL could not be reached, refused us, or went away mid-transaction (nothing of
    that transaction was committed). Raised by :mod:`pipeline.db`, chained to psycopg's error."""


class StaleVersion(VelourcityError):
    """A write conditional on a version (the API's ``If-Match``) found another one committed:
    nothing was written. ``current`` is the version there now."""

    def __init__(self, message: str, *, current: int) -> None:
        super().__init__(message)
        self.current = current


class Conflict(VelourcityError):
    """A create named a record that exists already (its id is taken): nothing was written."""


class DeliveryOutcome(VelourcityError):
    """Raised inside the sender to steer what happens to a delivery; never a crash."""


class RetryLater(DeliveryOutcome):
    def __init__(self, reason: str, *, after_seconds: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.after_seconds = after_seconds


class GiveUp(DeliveryOutcome):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
