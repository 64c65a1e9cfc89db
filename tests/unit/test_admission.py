"""What the sender does with a delivery it takes (:func:`pipeline.delivery.admission.admit`),
decided without a broker: one pure function of the delivery, its endpoint and their state."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.delivery.admission import admit
from pipeline.delivery.record import Delivery
from pipeline.endpoints.model import Endpoint, new_secret

NOW = 1_760_000_000_000


def endpoint(**changes: Any) -> Endpoint:
    values: dict[str, Any] = {
        "id": "ep_1",
        "account_id": "acct_1",
        "url": "https://partner.example/hooks",
        "event_types": None,
        "secret": new_secret(),
        "created_at": NOW,
        "updated_at": NOW,
    } | changes
    return Endpoint(**values)


def delivery(**changes: Any) -> Delivery:
    values: dict[str, Any] = {
        "delivery_id": "dlv_1",
        "event_id": "evt_1",
        "event_type": "order.created",
        "account_id": "acct_1",
        "endpoint_id": "ep_1",
        "body": b"{}",
        "event_time": NOW,
    } | changes
    return Delivery(**values)


def decide(d: Delivery | None = None, e: Endpoint | None = None, **state: Any) -> tuple[str, float]:
    facts: dict[str, Any] = {
        "now_ms": NOW,
        "ordered": False,
        "breaker_wait": 0.0,
        "taken": 0,
        "share": 110,
    } | state
    admission = admit(d or delivery(), e if e is not None else endpoint(), **facts)
    return admission.kind, admission.wait


def test_a_due_delivery_to_a_healthy_endpoint_is_attempted() -> None:
    assert decide() == ("attempt", 0.0)


def test_a_retry_not_yet_due_waits_for_its_time() -> None:
    assert decide(delivery(not_before=NOW + 2500)) == ("wait", 2.5)
    assert decide(delivery(not_before=NOW)) == ("attempt", 0.0)


def test_not_due_comes_first_even_behind_an_open_breaker() -> None:
    """A retry tier's head pauses its partition; nothing is decided before it is due."""
    assert decide(delivery(not_before=NOW + 1000), breaker_wait=30.0)[0] == "wait"


def test_an_ordered_delivery_is_left_to_its_queue() -> None:
    assert decide(ordered=True, breaker_wait=30.0, taken=500)[0] == "ordered"


def test_an_open_breaker_parks_the_delivery_before_the_endpoint_share_is_looked_at() -> None:
    assert decide(breaker_wait=12.0, taken=500)[0] == "behind_breaker"


@pytest.mark.parametrize(("taken", "kind"), [(109, "attempt"), (110, "defer"), (500, "defer")])
def test_an_endpoint_past_its_share_is_deferred(taken: int, kind: str) -> None:
    assert decide(taken=taken)[0] == kind


@pytest.mark.parametrize(
    "target",
    [None, endpoint(enabled=False), endpoint(listen=True)],
    ids=["deleted", "disabled", "listen"],
)
def test_no_request_is_at_stake_for_a_deleted_disabled_or_listen_endpoint(
    target: Endpoint | None,
) -> None:
    """The attempt logs or dead-letters it at once: no breaker or share holds it back."""
    d = delivery()
    admission = admit(d, target, now_ms=NOW, ordered=False, breaker_wait=30.0, taken=500, share=110)
    assert admission.kind == "attempt"
