"""The bookkeeping of ordered endpoints: queue transitions and where parked deliveries wait."""

from __future__ import annotations

import orjson
import pytest

from pipeline.delivery.ordering import Decision, OrderingBook, park_until, queue_name
from pipeline.delivery.record import Delivery
from pipeline.endpoints.model import Endpoint
from pipeline.events.codec import DecodedEvent
from pipeline.events.samples import sample_event
from pipeline.fanout import fan_out

Q = queue_name("ep_1", "ord_x")


def test_the_first_delivery_of_an_order_is_attempted_and_joins_the_queue() -> None:
    book = OrderingBook()
    assert book.decide(Q, "d1") == Decision("attempt", changed=True)
    assert book.ids(Q) == ["d1"]


def test_a_later_delivery_waits_while_the_heads_attempt_is_in_flight() -> None:
    book = OrderingBook()
    book.decide(Q, "d1")
    assert book.decide(Q, "d2") == Decision("wait", changed=True)
    assert book.decide(Q, "d2") == Decision("wait")  # joins once
    assert book.ids(Q) == ["d1", "d2"]


def test_delivered_head_leaves_and_the_next_one_goes() -> None:
    book = OrderingBook()
    book.decide(Q, "d1")
    book.decide(Q, "d2")
    assert book.settle(Q, "d1", None)
    assert book.decide(Q, "d2") == Decision("attempt")
    assert book.settle(Q, "d2", None)
    assert len(book) == 0  # an empty queue is forgotten
    assert book.snapshot(Q) is None  # ...and written as a tombstone


def test_a_later_delivery_is_parked_until_the_head_is_due_again() -> None:
    book = OrderingBook()
    book.decide(Q, "d1")
    assert book.settle(Q, "d1", 5_000)  # failed: retry due at 5 s
    assert book.decide(Q, "d2") == Decision("park", head_due=5_000, changed=True)
    assert book.decide(Q, "d3") == Decision("park", head_due=5_000, changed=True)
    # The head comes back from its retry tier and goes first; the others still wait.
    assert book.decide(Q, "d1") == Decision("attempt")
    assert book.decide(Q, "d3").kind == "wait"
    book.settle(Q, "d1", None)  # delivered on the retry
    assert book.decide(Q, "d3") == Decision("park", head_due=None)  # d2 is the head now
    assert book.decide(Q, "d2") == Decision("attempt")
    assert book.ids(Q) == ["d2", "d3"]


def test_a_dead_lettered_head_lets_the_next_one_go_like_a_delivered_one() -> None:
    book = OrderingBook()
    book.decide(Q, "d1")
    book.settle(Q, "d1", 1_000)
    book.decide(Q, "d2")
    book.decide(Q, "d1")
    assert book.settle(Q, "d1", None)  # last attempt failed: dead-lettered
    assert book.decide(Q, "d2").kind == "attempt"


def test_other_orders_never_wait() -> None:
    book = OrderingBook()
    book.decide(Q, "d1")
    book.settle(Q, "d1", 9_000)
    assert book.decide(queue_name("ep_1", "ord_y"), "e1").kind == "attempt"
    assert book.decide(queue_name("ep_2", "ord_x"), "f1").kind == "attempt"


def test_an_unchanged_retry_time_needs_no_write() -> None:
    book = OrderingBook()
    book.decide(Q, "d1")
    assert book.settle(Q, "d1", 1_000)
    book.decide(Q, "d1")
    assert not book.settle(Q, "d1", 1_000)


def test_a_delivery_sent_again_after_it_settled_joins_at_the_end() -> None:
    """Redrive or retry from the API: the same delivery id, a fresh record."""
    book = OrderingBook()
    book.decide(Q, "d1")
    book.settle(Q, "d1", None)
    book.decide(Q, "d2")
    book.settle(Q, "d2", 3_000)
    assert book.decide(Q, "d1") == Decision("park", head_due=3_000, changed=True)
    assert book.ids(Q) == ["d2", "d1"]


def test_drop_leaves_the_queue_when_the_endpoint_is_no_longer_ordered() -> None:
    book = OrderingBook()
    book.decide(Q, "d1")
    book.settle(Q, "d1", 1_000)
    book.decide(Q, "d2")
    assert book.drop(Q, "d1")
    assert book.ids(Q) == ["d2"]
    assert book.decide(Q, "d2").kind == "attempt"
    assert not book.drop(Q, "d2")  # in flight: its own attempt settles it
    assert not book.drop(Q, "d9")


def test_the_queue_survives_a_restart_through_its_snapshot() -> None:
    book = OrderingBook()
    book.decide(Q, "d1")
    book.settle(Q, "d1", 7_000)
    book.decide(Q, "d2")
    stored = {Q: book.snapshot(Q), "ep_1|broken": b"not json"}
    assert orjson.loads(stored[Q] or b"") == {"ids": ["d1", "d2"], "head_due": 7_000}

    restarted = OrderingBook()
    restarted.load({k: v for k, v in stored.items() if v is not None})
    assert restarted.ids(Q) == ["d1", "d2"]
    assert restarted.ids("ep_1|broken") == []
    # The in-flight mark is not kept: the head's record is read again and attempted.
    assert restarted.decide(Q, "d2") == Decision("park", head_due=7_000)
    assert restarted.decide(Q, "d1").kind == "attempt"


@pytest.mark.parametrize(
    ("head_in_ms", "expected"),
    [
        (None, (1.0, 1_000)),  # unknown: the first tier
        (-200, (1.0, 1_000)),  # due already (its record is on its way): the first tier
        (500, (1.0, 500)),  # sooner than any tier: the first, back when the head is due
        (1_500, (1.0, 1_000)),  # between tiers: the longest one not longer, for its delay
        (2_000, (2.0, 2_000)),
        (10_000, (5.0, 5_000)),  # longer than every tier: the longest; it is parked again
    ],
)
def test_park_until_never_outstays_its_tier(
    head_in_ms: int | None, expected: tuple[float, int]
) -> None:
    now = 1_000_000
    head_due = None if head_in_ms is None else now + head_in_ms
    tier, not_before = park_until(now, head_due, [1.0, 2.0, 5.0])
    assert not_before - now <= tier * 1000  # never pauses its tier for those behind it
    assert (tier, not_before - now) == expected


def _decoded(event: dict) -> DecodedEvent:
    return DecodedEvent(event_type=event["type"], writer_version=1, event=event)


def _endpoint(**changes: object) -> Endpoint:
    fields: dict = {
        "id": "ep_1",
        "account_id": "acct_a",
        "url": "https://partner.example/hooks",
        "event_types": None,
        "secret": "whsec_" + "A" * 40,
        "created_at": 1,
        "updated_at": 1,
    } | changes
    return Endpoint(**fields)


def test_fan_out_sets_the_ordering_key_to_the_order_id() -> None:
    event = sample_event("order.picked_up", "acct_a", order_id="ord_42")
    (delivery,) = fan_out(_decoded(event), [_endpoint()])
    assert delivery.ordering_key == "ord_42"
    assert Delivery.from_bytes(delivery.to_bytes()).ordering_key == "ord_42"


def test_order_key_falls_back_to_the_body_for_records_without_it() -> None:
    event = sample_event("payment.completed", "acct_a", order_id="ord_7")
    (delivery,) = fan_out(_decoded(event), [_endpoint()])
    old = _as_json(delivery)
    del old["ordering_key"]  # written before the field existed, or rebuilt from history
    assert Delivery.from_bytes(orjson.dumps(old)).order_key() == "ord_7"
    assert delivery.replace(ordering_key=None, body="{}").order_key() is None


def test_a_delivery_with_a_field_from_a_newer_version_is_still_readable() -> None:
    event = sample_event("order.created", "acct_a")
    (delivery,) = fan_out(_decoded(event), [_endpoint()])
    newer = _as_json(delivery) | {"priority": 3}
    assert Delivery.from_bytes(orjson.dumps(newer)) == delivery


def test_ordered_is_off_by_default_and_kept_on_the_endpoints_topic() -> None:
    assert _endpoint().ordered is False
    ordered = _endpoint(ordered=True)
    assert Endpoint.from_json(ordered.to_json()).ordered is True
    old = orjson.loads(_endpoint().to_json())
    del old["ordered"]
    assert Endpoint.from_json(orjson.dumps(old)).ordered is False


def test_the_api_creates_shows_and_changes_ordered() -> None:
    from test_api import make_client, new_account, new_endpoint

    with make_client() as client:
        _, key = new_account(client)
        plain = new_endpoint(client, key)
        assert plain["ordered"] is False
        ordered = new_endpoint(client, key, ordered=True)
        assert ordered["ordered"] is True
        url = f"/v1/endpoints/{plain['id']}"
        assert client.patch(url, json={"ordered": True}, headers=key).json()["ordered"] is True
        assert client.patch(url, json={"description": "x"}, headers=key).json()["ordered"]
        assert client.get(url, headers=key).json()["ordered"] is True
        assert client.patch(url, json={"ordered": False}, headers=key).json()["ordered"] is False


def _as_json(delivery: Delivery) -> dict[str, object]:
    """The record as older versions wrote it: one JSON object, the body a string in it."""
    head = orjson.loads(delivery.to_bytes().partition(b"\n")[0])
    return dict(head, body=delivery.body.decode())
