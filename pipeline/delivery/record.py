"""What travels on the deliveries, retry, dead-letter and attempts topics (JSON, via orjson).

A :class:`Delivery` carries everything a sender needs besides the endpoint itself: the exact
body bytes rendered once at fan-out, so every attempt signs and sends the same bytes. On the
topic it is one line of JSON (every field but the body), a newline, and the body's bytes
untouched: nothing decodes or re-encodes the body on its way to the partner. (Records written
before that carry the body as a JSON string, and are read as well.)

Both records are slotted dataclasses serialized by ``orjson.dumps`` directly (no ``asdict``)
and read back with a field set computed once per class.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Any, Literal

import orjson

Outcome = Literal["delivered", "retry", "dead_lettered", "endpoint_disabled", "endpoint_deleted"]


def delivery_id_for(event_id: str, endpoint_id: str) -> str:
    """Stable for the pair (event, endpoint): fan-out twice, same delivery id."""
    digest = hashlib.sha256(f"{event_id}\x00{endpoint_id}".encode()).digest()
    return "dlv_" + base64.b32encode(digest[:15]).decode().lower()


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    delivery_id: str
    event_id: str
    event_type: str
    account_id: str
    endpoint_id: str
    body: bytes
    """The exact JSON body (UTF-8) POSTed on every attempt (a ``str`` given is encoded)."""
    attempt: int = 1
    """The number of the attempt this record asks for (1 is the first try)."""
    event_time: int
    """When the event happened, unix ms."""
    first_attempt_at: int | None = None
    not_before: int = 0
    """Unix ms before which this attempt must not be made (retry tiers)."""
    history: tuple[dict[str, Any], ...] = ()
    """Summaries of the attempts made so far (attempt, at, status, error)."""
    dead_letter_reason: str | None = None
    ordering_key: str | None = None
    """The event's ``data.order_id`` (set at fan-out): an ordered endpoint receives the
    deliveries of one key in order. None: the event has no order (``endpoint.disabled``)."""
    replay: bool = False
    """Sent again by ``velourcity replay``: the webhook carries ``X-Velourcity-Replay: true``,
    so a receiver can tell a deliberate re-send from a retry (same ids either way)."""
    traceparent: str | None = None
    """The W3C trace context of the event's fan-out (:mod:`pipeline.tracing`): each attempt's
    span is its child, and the webhook carries it on. None: none came with the event."""
    internal_errors: int = 0
    """Times a bug of ours stopped this attempt (no request made; see
    :meth:`~pipeline.delivery.handler.DeliveryHandler.on_error`)."""

    def __post_init__(self) -> None:
        if isinstance(self.body, str):
            object.__setattr__(self, "body", self.body.encode())

    def to_bytes(self) -> bytes:
        return orjson.dumps(self, default=_body_left_out) + b"\n" + self.body

    @classmethod
    def from_bytes(cls, raw: bytes) -> Delivery:
        head, newline, body = raw.partition(b"\n")  # JSON from orjson holds no raw newline
        fields = orjson.loads(head)
        if not isinstance(fields, dict):
            raise ValueError(f"a delivery record is a JSON object, not {type(fields).__name__}")
        if newline:
            fields["body"] = body
        # Fields a newer version added are left out, so a rolling upgrade never makes a
        # delivery unreadable (it would be quarantined).
        if fields.keys() - _DELIVERY_FIELDS:
            fields = {k: v for k, v in fields.items() if k in _DELIVERY_FIELDS}
        if "history" in fields:
            fields["history"] = tuple(fields["history"])
        return cls(**fields)

    def order_key(self) -> str | None:
        """``ordering_key``, or else the body's ``data.order_id``: deliveries sent again from
        the API's history (``fresh_delivery``) or written before the field existed lack it."""
        if self.ordering_key is not None:
            return self.ordering_key
        try:
            data = orjson.loads(self.body).get("data")  # accepts bytes
        except (orjson.JSONDecodeError, AttributeError):
            return None
        key = data.get("order_id") if isinstance(data, dict) else None
        return key if isinstance(key, str) and key else None

    def replace(self, **changes: Any) -> Delivery:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, slots=True, kw_only=True)
class Attempt:
    """One line of the attempt log: every attempt, success or failure, and what happens next."""

    delivery_id: str
    endpoint_id: str
    account_id: str
    event_id: str
    event_type: str
    attempt: int
    at: int
    """When the attempt started, unix ms."""
    status: int | None
    """HTTP status, or None when no response came."""
    error: str | None
    """Error class when no usable response came: connect_error, timeout, tls_error, ..."""
    latency_ms: float
    response_excerpt: str
    """The first 4 KiB of the response body."""
    outcome: Outcome
    next_attempt_at: int | None = None
    event_time: int | None = None
    """The delivery's ``event_time``: tells the delivery log which days its delivery's row can
    be in (:mod:`pipeline.deliverylog.rows`). None in records written before it was added."""

    def to_bytes(self) -> bytes:
        return orjson.dumps(self)

    @classmethod
    def from_bytes(cls, raw: bytes) -> Attempt:
        fields = orjson.loads(raw)
        if not isinstance(fields, dict):
            raise ValueError(f"an attempt record is a JSON object, not {type(fields).__name__}")
        if fields.keys() - _ATTEMPT_FIELDS:  # a newer version's fields (a rolling upgrade)
            fields = {k: v for k, v in fields.items() if k in _ATTEMPT_FIELDS}
        return cls(**fields)


def _body_left_out(value: object) -> None:
    """orjson's ``default`` for :meth:`Delivery.to_bytes`: the body (bytes, which JSON cannot
    hold) is written as null and its bytes follow the line."""
    if isinstance(value, bytes):
        return None
    raise TypeError(f"{type(value).__name__} is not serializable in a delivery record")


_DELIVERY_FIELDS = frozenset(f.name for f in dataclasses.fields(Delivery))
_ATTEMPT_FIELDS = frozenset(f.name for f in dataclasses.fields(Attempt))
