"""Signed webhook requests built by the code that sends real ones (the pipeline's own tests).

    from pipeline.testing import make_signed_request

    request = make_signed_request("order.created", "whsec_...", order_id="ord_123")
    response = client.post("/webhooks", content=request.body, headers=request.headers)

The event comes from the same sample generator as ``velourcity trigger``, goes through the
Avro schema the domain services publish with (so an override that does not fit the schema
fails here, as it would in production), and is rendered, wrapped in a delivery and signed by
the pipeline's own functions: the bytes and headers are exactly what an endpoint receives.

Partners use the dependency-free twin in the SDK, :mod:`velourcity_webhooks.testing` (and its
pytest plugin); ``tests/unit/test_sdk_matches_pipeline.py`` checks that the two agree byte for
byte. Both return the SDK's :class:`~velourcity_webhooks.testing.SignedRequest`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any

from velourcity_webhooks.testing import SignedRequest

from pipeline.delivery.record import Delivery, delivery_id_for
from pipeline.delivery.signing import webhook_headers
from pipeline.events.body import render_body
from pipeline.events.codec import decode, encode
from pipeline.events.registry import SchemaRegistry
from pipeline.events.samples import sample_event
from pipeline.events.types import EVENT_TYPES

__all__ = ["EVENT_TYPES", "SignedRequest", "make_signed_request"]


@cache
def _registry() -> SchemaRegistry:
    """The shipped schemas (in the wheel, or ``schemas/`` in a checkout); an error if absent."""
    return SchemaRegistry.from_directory()


def _as_published(event: dict[str, Any]) -> dict[str, Any]:
    """The event as the fan-out reads it: Avro-encoded with its current schema, then decoded."""
    registry = _registry()
    return decode(encode(event, registry.current(event["type"])), registry).event


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
    event = _as_published(event)
    body = render_body(event)
    delivery = Delivery(
        delivery_id=delivery_id_for(event["id"], endpoint_id),
        event_id=event["id"],
        event_type=event["type"],
        account_id=event["account_id"],
        endpoint_id=endpoint_id,
        body=body,
        attempt=attempt,
        event_time=int(event["occurred_at"].timestamp() * 1000),
    )
    sent = delivery.body  # as the handler does: every attempt sends these bytes
    sent_at = int(time.time()) if timestamp is None else timestamp
    return SignedRequest(
        headers=webhook_headers(delivery, sent, secrets, timestamp=sent_at), body=sent
    )
