"""Signed webhook requests for your receiver's unit tests (standard library only).

    from velourcity_webhooks.testing import make_signed_request

    request = make_signed_request("order.created", "whsec_...", order_id="ord_123")
    response = client.post("/webhooks", content=request.body, headers=request.headers)

The body has the shape, field order and encoding of a real webhook (``{"id", "type",
"created_at", "account_id", "data"}``, compact UTF-8 JSON, timestamps as ISO-8601 UTC with
milliseconds and ``Z``, amounts as integers in minor units) and the headers are those Velourcity
sends, signed with both schemes. Velourcity's own test suite checks, for every event type, that
these samples fit the published Avro schemas and that body and headers are byte for byte what
the sender produces. The pytest plugin (:mod:`velourcity_webhooks.pytest_plugin`) offers this as
fixtures.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import secrets as _secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from velourcity_webhooks.signatures import standard_signature, velourcity_signature

__all__ = ["EVENT_TYPES", "SignedRequest", "make_signed_request", "new_secret"]

EVENT_TYPES: tuple[str, ...] = (
    "order.created",
    "order.driver_assigned",
    "order.picked_up",
    "order.delivered",
    "order.cancelled",
    "payment.completed",
)
"""The event types an endpoint receives (besides the operational ``endpoint.disabled``)."""

USER_AGENT = "Velourcity-Webhooks/1.0"
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_DISHES = [
    ("itm_margherita", "Pizza Margherita", 1150),
    ("itm_pad_thai", "Pad Thai", 1390),
    ("itm_ramen", "Tonkotsu Ramen", 1490),
    ("itm_falafel", "Falafel Wrap", 890),
    ("itm_tiramisu", "Tiramisu", 650),
    ("itm_lemonade", "Lemonade", 350),
]
_DRIVERS = ["Amara Okafor", "Luca Bianchi", "Mei Tanaka", "Diego Ramos", "Sofia Novak"]
_CITIES = [("Lisbon", "1100-148", "PT"), ("Berlin", "10115", "DE"), ("Lyon", "69002", "FR")]
_CANCEL_REASONS = {
    "customer": "Customer changed their mind",
    "restaurant": "Restaurant is out of a key ingredient",
    "system": "No driver available in time",
}


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """One webhook POST: send ``body`` unchanged with ``headers``."""

    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        """The body parsed, for assertions."""
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


def new_secret() -> str:
    """A fresh ``whsec_`` secret in the production format (32 random bytes, base64)."""
    return "whsec_" + base64.b64encode(_secrets.token_bytes(32)).decode()


def _ulid() -> str:
    value = ((time.time_ns() // 1_000_000) << 80) | _secrets.randbits(80)
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def _iso_utc(moment: datetime) -> str:
    """``2026-11-28T04:41:44.123Z``."""
    utc = moment.astimezone(UTC)
    return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return _iso_utc(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def render_body(event: dict[str, Any]) -> bytes:
    """The webhook body for an envelope ``{"id", "type", "occurred_at", "account_id", "data"}``."""
    payload = {
        "id": event["id"],
        "type": event["type"],
        "created_at": event["occurred_at"],
        "account_id": event["account_id"],
        "data": event["data"],
    }
    return json.dumps(_jsonable(payload), separators=(",", ":"), ensure_ascii=False).encode()


def delivery_id_for(event_id: str, endpoint_id: str) -> str:
    """The ``X-Velourcity-Delivery-Id`` of an event's delivery to an endpoint."""
    digest = hashlib.sha256(f"{event_id}\x00{endpoint_id}".encode()).digest()
    return "dlv_" + base64.b32encode(digest[:15]).decode().lower()


def sample_event(event_type: str, account_id: str, *, rng: random.Random) -> dict[str, Any]:
    """A plausible envelope of ``event_type`` (timestamps as ``datetime``, like the sender's)."""
    if event_type not in EVENT_TYPES:
        raise ValueError(
            f"unknown event type {event_type!r}; the event types are: {', '.join(EVENT_TYPES)}"
        )
    now = datetime.now(UTC).replace(microsecond=0)
    order = {
        "order_id": f"ord_{_ulid()}",
        "restaurant_id": f"rst_{rng.randint(100, 999)}",
        "customer_id": f"cus_{rng.randint(10000, 99999)}",
    }
    data: dict[str, Any]
    if event_type == "order.created":
        picked = [(dish, rng.randint(1, 3)) for dish in rng.sample(_DISHES, rng.randint(1, 3))]
        items = [
            {"item_id": i, "name": n, "quantity": q, "unit_price": p} for (i, n, p), q in picked
        ]
        subtotal = sum(q * p for (_, _, p), q in picked)
        fee, tax = 299, subtotal * 13 // 100
        city, postal, country = rng.choice(_CITIES)
        data = order | {
            "items": items,
            "currency": "EUR",
            "subtotal": subtotal,
            "delivery_fee": fee,
            "tax": tax,
            "total": subtotal + fee + tax,
            "delivery_address": {
                "line1": f"Rua das Flores {rng.randint(1, 200)}",
                "line2": None,
                "city": city,
                "postal_code": postal,
                "country": country,
            },
            "estimated_delivery_at": now + timedelta(minutes=35),
            "special_instructions": rng.choice([None, "Ring twice", "Leave at the door"]),
        }
    elif event_type == "order.driver_assigned":
        data = order | {
            "driver": {
                "id": f"drv_{rng.randint(1000, 9999)}",
                "name": rng.choice(_DRIVERS),
                "vehicle": {"type": rng.choice(["bicycle", "scooter", "car"]), "plate": None},
            },
            "pickup_eta": now + timedelta(minutes=8),
            "delivery_eta": now + timedelta(minutes=27),
        }
    elif event_type == "order.picked_up":
        data = order | {
            "driver_id": f"drv_{rng.randint(1000, 9999)}",
            "picked_up_at": now,
            "delivery_eta": now + timedelta(minutes=18),
        }
    elif event_type == "order.delivered":
        data = order | {
            "driver_id": f"drv_{rng.randint(1000, 9999)}",
            "picked_up_at": now - timedelta(minutes=17),
            "delivered_at": now,
        }
    elif event_type == "order.cancelled":
        by = rng.choice(list(_CANCEL_REASONS))
        data = order | {
            "cancelled_by": by,
            "reason": _CANCEL_REASONS[by],
            "cancelled_at": now,
            "currency": "EUR",
            "refund_amount": rng.choice([None, 2450]),
        }
    else:  # payment.completed
        data = {
            "payment_id": f"pay_{_ulid()}",
            "order_id": order["order_id"],
            "customer_id": order["customer_id"],
            "amount": rng.randint(900, 9000),
            "currency": "EUR",
            "method": rng.choice(["card", "wallet", "cash", "bank_transfer"]),
            "completed_at": now,
        }
    return {
        "id": f"evt_{_ulid()}",
        "type": event_type,
        "occurred_at": now,
        "account_id": account_id,
        "data": data,
    }


def signed_headers(
    body: bytes,
    secrets: Sequence[str],
    *,
    event_id: str,
    event_type: str,
    delivery_id: str,
    attempt: int,
    timestamp: int,
) -> dict[str, str]:
    """The headers of one attempt; ``secrets`` newest first (all sign, during a rotation)."""
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Velourcity-Signature": velourcity_signature(body, secrets[0]),
        "X-Velourcity-Event": event_type,
        "X-Velourcity-Delivery-Attempt": str(attempt),
        "X-Velourcity-Event-Id": event_id,
        "X-Velourcity-Delivery-Id": delivery_id,
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(
            standard_signature(body, secret, event_id, timestamp) for secret in secrets
        ),
    }


def make_signed_request(
    event_type: str,
    secret: str | Sequence[str],
    *,
    event_id: str | None = None,
    account_id: str = "acct_test",
    endpoint_id: str = "ep_test",
    occurred_at: datetime | None = None,
    timestamp: int | None = None,
    attempt: int = 1,
    seed: int | None = None,
    **data: Any,
) -> SignedRequest:
    """A webhook of ``event_type`` signed with ``secret`` (several, newest first: a rotation).

    Keyword arguments not named here replace fields of the sample's ``data`` (``order_id=...``,
    ``total=...``); an unknown field is a ``TypeError``. ``timestamp`` is ``webhook-timestamp``
    (unix seconds, default now: pass an old one to test the replay window); ``attempt`` is the
    delivery attempt (the ids and signatures of a retry are the same, only the attempt header
    and timestamp change); ``seed`` makes the sample data reproducible.
    """
    secrets = [secret] if isinstance(secret, str) else list(secret)
    if not secrets:
        raise ValueError("make_signed_request needs at least one secret")
    event = sample_event(event_type, account_id, rng=random.Random(seed))
    unknown = sorted(set(data) - set(event["data"]))
    if unknown:
        raise TypeError(
            f"{event_type} has no data field {', '.join(unknown)}; "
            f"its fields: {', '.join(event['data'])}"
        )
    event["data"] = {**event["data"], **data}
    if event_id is not None:
        event["id"] = event_id
    if occurred_at is not None:
        event["occurred_at"] = occurred_at.astimezone(UTC)
    body = render_body(event)
    sent_at = int(time.time()) if timestamp is None else timestamp
    headers = signed_headers(
        body,
        secrets,
        event_id=event["id"],
        event_type=event_type,
        delivery_id=delivery_id_for(event["id"], endpoint_id),
        attempt=attempt,
        timestamp=sent_at,
    )
    return SignedRequest(headers=headers, body=body)
