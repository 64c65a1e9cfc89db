"""The event types partners can subscribe to, and which domain topic carries each."""

from __future__ import annotations

from typing import Final

from pipeline.exceptions import UnknownEventType
from pipeline.settings import Settings

ORDER_EVENTS: Final = (
    "order.created",
    "order.driver_assigned",
    "order.picked_up",
    "order.delivered",
    "order.cancelled",
)
PAYMENT_EVENTS: Final = ("payment.completed",)
EVENT_TYPES: Final[tuple[str, ...]] = ORDER_EVENTS + PAYMENT_EVENTS
"""The domain events: Avro on the domain topics, published by Velourcity's services."""
OPERATIONAL_EVENTS: Final = ("endpoint.disabled",)
"""Events the webhook system itself sends about an account's endpoints (not on the domain
topics: the worker that notices writes their deliveries directly)."""
SUBSCRIBABLE_TYPES: Final[tuple[str, ...]] = EVENT_TYPES + OPERATIONAL_EVENTS


def check_subscribable(name: str) -> str:
    """``name`` if an endpoint may subscribe to it, else raise :class:`UnknownEventType`."""
    if name not in SUBSCRIBABLE_TYPES:
        raise UnknownEventType(
            f"unknown event type {name!r}; the event types are: {', '.join(SUBSCRIBABLE_TYPES)}"
        )
    return name


def check_event_type(name: str) -> str:
    """Return ``name`` if it is a published event type, else raise :class:`UnknownEventType`."""
    if name not in EVENT_TYPES:
        raise UnknownEventType(
            f"unknown event type {name!r}; the event types are: {', '.join(EVENT_TYPES)}"
        )
    return name


def domain_topic_name(settings: Settings, event_type: str) -> str:
    """The (prefixed) domain topic an event type is published to."""
    check_event_type(event_type)
    base = settings.payments_topic if event_type in PAYMENT_EVENTS else settings.orders_topic
    return settings.topic(base)
