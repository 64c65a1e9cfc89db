"""Realistic sample events, for `velourcity trigger`, the demo and tests."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.events.ids import new_event_id, ulid
from pipeline.events.types import check_event_type

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


def new_event(
    event_type: str,
    account_id: str,
    data: dict[str, Any],
    *,
    occurred_at: datetime | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """An event envelope ready for :meth:`pipeline.publisher.Publisher.publish`."""
    return {
        "id": event_id or new_event_id(),
        "type": check_event_type(event_type),
        "occurred_at": occurred_at or datetime.now(UTC),
        "account_id": account_id,
        "data": data,
    }


def sample_event(
    event_type: str,
    account_id: str,
    *,
    order_id: str | None = None,
    rng: random.Random | None = None,
) -> dict[str, Any]:
    """A plausible event of ``event_type`` for ``account_id``."""
    rng = rng or random.Random()
    now = datetime.now(UTC).replace(microsecond=0)
    order = {
        "order_id": order_id or f"ord_{ulid()}",
        "restaurant_id": f"rst_{rng.randint(100, 999)}",
        "customer_id": f"cus_{rng.randint(10000, 99999)}",
    }
    data: dict[str, Any]
    match check_event_type(event_type):
        case "order.created":
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
        case "order.driver_assigned":
            data = order | {
                "driver": {
                    "id": f"drv_{rng.randint(1000, 9999)}",
                    "name": rng.choice(_DRIVERS),
                    "vehicle": {"type": rng.choice(["bicycle", "scooter", "car"]), "plate": None},
                },
                "pickup_eta": now + timedelta(minutes=8),
                "delivery_eta": now + timedelta(minutes=27),
            }
        case "order.picked_up":
            data = order | {
                "driver_id": f"drv_{rng.randint(1000, 9999)}",
                "picked_up_at": now,
                "delivery_eta": now + timedelta(minutes=18),
            }
        case "order.delivered":
            data = order | {
                "driver_id": f"drv_{rng.randint(1000, 9999)}",
                "picked_up_at": now - timedelta(minutes=17),
                "delivered_at": now,
            }
        case "order.cancelled":
            by = rng.choice(list(_CANCEL_REASONS))
            data = order | {
                "cancelled_by": by,
                "reason": _CANCEL_REASONS[by],
                "cancelled_at": now,
                "currency": "EUR",
                "refund_amount": rng.choice([None, 2450]),
            }
        case _:  # payment.completed
            data = {
                "payment_id": f"pay_{ulid()}",
                "order_id": order["order_id"],
                "customer_id": order["customer_id"],
                "amount": rng.randint(900, 9000),
                "currency": "EUR",
                "method": rng.choice(["card", "wallet", "cash", "bank_transfer"]),
                "completed_at": now,
            }
    return new_event(event_type, account_id, data, occurred_at=now)
