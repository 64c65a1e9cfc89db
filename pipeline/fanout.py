"""Fan-out: one domain event becomes one delivery per matching, enabled endpoint of its account.

Pure functions; the Faust agent that runs them lives in :mod:`pipeline.worker`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from pipeline.delivery.handler import Output
from pipeline.delivery.record import Delivery, delivery_id_for
from pipeline.endpoints.model import Endpoint
from pipeline.events.body import render_body
from pipeline.events.codec import DecodedEvent
from pipeline.settings import Settings
from pipeline.topics import QUARANTINE


def fan_out(decoded: DecodedEvent, endpoints: Iterable[Endpoint]) -> list[Delivery]:
    """Deliveries for every endpoint that wants this event; the body is rendered once."""
    event = decoded.event
    targets = [
        e for e in endpoints if e.account_id == event["account_id"] and e.wants(decoded.event_type)
    ]
    if not targets:
        return []
    body = render_body(event).decode()
    order_id = (event.get("data") or {}).get("order_id")
    event_time = int(event["occurred_at"].timestamp() * 1000)
    return [
        Delivery(
            delivery_id=delivery_id_for(event["id"], endpoint.id),
            event_id=event["id"],
            event_type=decoded.event_type,
            account_id=event["account_id"],
            endpoint_id=endpoint.id,
            body=body,
            event_time=event_time,
            ordering_key=order_id if isinstance(order_id, str) and order_id else None,
        )
        for endpoint in targets
    ]


def quarantine(
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
        ("velourcity-quarantine-reason", reason.encode()),
        ("velourcity-quarantine-error", error[:1000].encode()),
        ("velourcity-source-topic", topic.encode()),
        ("velourcity-source-partition", str(partition).encode()),
        ("velourcity-source-offset", str(offset).encode()),
        ("velourcity-quarantined-at", str(int(time.time() * 1000)).encode()),
    )
    return Output(settings.topic(QUARANTINE), key or b"", value or b"", headers)
