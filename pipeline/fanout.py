"""Fan-out: one domain event becomes one delivery per matching, enabled endpoint of its account.

Pure functions; the Faust agent that runs them lives in :mod:`pipeline.worker`.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from pipeline.delivery.record import Delivery, delivery_id_for
from pipeline.endpoints.model import Endpoint
from pipeline.events.body import render_body
from pipeline.events.codec import DecodedEvent
from pipeline.observability import FILTERED_OUT


def fan_out(
    decoded: DecodedEvent, endpoints: Iterable[Endpoint], *, traceparent: str | None = None
) -> list[Delivery]:
    """Deliveries for every endpoint that wants this event and whose content filter matches
    its body (rendered once, and parsed once for the filters)."""
    event = decoded.event
    targets = [
        e for e in endpoints if e.account_id == event["account_id"] and e.wants(decoded.event_type)
    ]
    if not targets:
        return []
    body = render_body(event)
    if any(e.filter is not None for e in targets):
        parsed = orjson.loads(body)
        kept = []
        for endpoint in targets:
            if endpoint.matches(parsed):
                kept.append(endpoint)
            else:
                FILTERED_OUT.labels(endpoint.id).inc()
        targets = kept
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
            traceparent=traceparent,
        )
        for endpoint in targets
    ]
