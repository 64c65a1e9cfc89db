"""Fan-out: one decoded event becomes one delivery per matching, enabled endpoint."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from pipeline.delivery.record import Delivery, delivery_id_for
from pipeline.endpoints.model import Endpoint, new_secret
from pipeline.events import EVENT_TYPES, DecodedEvent, decode, default_registry, encode
from pipeline.events.body import render_body
from pipeline.events.samples import sample_event
from pipeline.fanout import fan_out
from pipeline.quarantine import quarantine_record as quarantine
from pipeline.settings import Settings
from pipeline.topics import QUARANTINE

SETTINGS = Settings(allowed_networks="127.0.0.0/8", retry_schedule="1,2,2")
REGISTRY = default_registry()


def decoded_event(event_type: str = "order.created", account_id: str = "acct_1") -> DecodedEvent:
    event = sample_event(event_type, account_id, rng=random.Random(11))
    return decode(encode(event, REGISTRY.current(event_type)), REGISTRY)


def endpoint(endpoint_id: str, **changes: Any) -> Endpoint:
    values: dict[str, Any] = {
        "id": endpoint_id,
        "account_id": "acct_1",
        "url": f"https://hooks.example.com/{endpoint_id}",
        "event_types": None,
        "secret": new_secret(),
        "created_at": 1_760_000_000_000,
        "updated_at": 1_760_000_000_000,
    } | changes
    return Endpoint(**values)


def targets(deliveries: list[Delivery]) -> list[str]:
    return [d.endpoint_id for d in deliveries]


# Who gets what ------------------------------------------------------------------------------------


def test_event_type_filters_hold() -> None:
    endpoints = [
        endpoint("ep_all", event_types=None),
        endpoint("ep_created", event_types=("order.created",)),
        endpoint("ep_delivered", event_types=("order.delivered", "payment.completed")),
    ]
    assert targets(fan_out(decoded_event("order.created"), endpoints)) == ["ep_all", "ep_created"]
    assert targets(fan_out(decoded_event("order.delivered"), endpoints)) == [
        "ep_all",
        "ep_delivered",
    ]
    assert targets(fan_out(decoded_event("payment.completed"), endpoints)) == [
        "ep_all",
        "ep_delivered",
    ]
    assert targets(fan_out(decoded_event("order.cancelled"), endpoints)) == ["ep_all"]


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_an_endpoint_without_filter_gets_every_type(event_type: str) -> None:
    deliveries = fan_out(decoded_event(event_type), [endpoint("ep_all")])
    assert targets(deliveries) == ["ep_all"]
    assert deliveries[0].event_type == event_type


def test_another_accounts_endpoints_never_get_deliveries() -> None:
    endpoints = [
        endpoint("ep_mine"),
        endpoint("ep_theirs", account_id="acct_2"),
        endpoint("ep_theirs_typed", account_id="acct_2", event_types=("order.created",)),
    ]
    assert targets(fan_out(decoded_event(account_id="acct_1"), endpoints)) == ["ep_mine"]
    assert targets(fan_out(decoded_event(account_id="acct_2"), endpoints)) == [
        "ep_theirs",
        "ep_theirs_typed",
    ]
    assert fan_out(decoded_event(account_id="acct_3"), endpoints) == []


def test_account_match_is_exact() -> None:
    endpoints = [endpoint("ep_1", account_id="acct_1"), endpoint("ep_10", account_id="acct_10")]
    assert targets(fan_out(decoded_event(account_id="acct_1"), endpoints)) == ["ep_1"]


def test_disabled_endpoints_get_none() -> None:
    endpoints = [
        endpoint("ep_off", enabled=False, disabled_reason="endpoint answered 410 Gone"),
        endpoint("ep_off_typed", enabled=False, event_types=("order.created",)),
        endpoint("ep_on"),
    ]
    assert targets(fan_out(decoded_event(), endpoints)) == ["ep_on"]
    assert fan_out(decoded_event(), endpoints[:2]) == []


def test_no_endpoints_no_deliveries() -> None:
    assert fan_out(decoded_event(), []) == []


def test_endpoints_may_be_any_iterable() -> None:
    deliveries = fan_out(decoded_event(), (e for e in [endpoint("ep_a"), endpoint("ep_b")]))
    assert targets(deliveries) == ["ep_a", "ep_b"]


# What they get ------------------------------------------------------------------------------------


def test_body_is_rendered_once_and_identical_for_all_endpoints() -> None:
    decoded = decoded_event()
    deliveries = fan_out(decoded, [endpoint(f"ep_{n}") for n in range(5)])
    assert len(deliveries) == 5
    bodies = {d.body for d in deliveries}
    assert len(bodies) == 1
    (body,) = bodies
    assert body == render_body(decoded.event)
    parsed = orjson.loads(body)
    assert parsed["id"] == decoded.event["id"]
    assert parsed["type"] == "order.created"
    assert parsed["account_id"] == "acct_1"
    assert parsed["data"]["order_id"] == decoded.event["data"]["order_id"]


def test_body_is_rendered_once_per_event(monkeypatch: pytest.MonkeyPatch) -> None:
    import pipeline.fanout

    calls: list[str] = []

    def counting(event: dict[str, Any]) -> bytes:
        calls.append(event["id"])
        return render_body(event)

    monkeypatch.setattr(pipeline.fanout, "render_body", counting)
    fan_out(decoded_event(), [endpoint(f"ep_{n}") for n in range(4)])
    assert len(calls) == 1


def test_delivery_fields() -> None:
    decoded = decoded_event("order.delivered")
    (delivery,) = fan_out(decoded, [endpoint("ep_a")])
    event = decoded.event
    assert delivery.event_id == event["id"]
    assert delivery.event_type == "order.delivered"
    assert delivery.account_id == "acct_1"
    assert delivery.endpoint_id == "ep_a"
    assert delivery.attempt == 1
    assert delivery.history == ()
    assert delivery.not_before == 0
    assert delivery.first_attempt_at is None
    assert delivery.dead_letter_reason is None
    assert delivery.event_time == int(event["occurred_at"].timestamp() * 1000)


def test_delivery_ids_are_stable_and_differ_across_endpoints() -> None:
    decoded = decoded_event()
    endpoints = [endpoint("ep_a"), endpoint("ep_b"), endpoint("ep_c")]
    first = fan_out(decoded, endpoints)
    again = fan_out(decoded, endpoints)
    assert [d.delivery_id for d in first] == [d.delivery_id for d in again]
    assert len({d.delivery_id for d in first}) == 3
    for d in first:
        assert d.delivery_id == delivery_id_for(decoded.event["id"], d.endpoint_id)
        assert d.delivery_id.startswith("dlv_")


def test_delivery_ids_differ_across_events() -> None:
    one, two = decoded_event(), decoded_event()
    assert one.event["id"] != two.event["id"]
    (d1,) = fan_out(one, [endpoint("ep_a")])
    (d2,) = fan_out(two, [endpoint("ep_a")])
    assert d1.delivery_id != d2.delivery_id


def test_delivery_id_does_not_collide_on_concatenation() -> None:
    assert delivery_id_for("evt_a", "bc") != delivery_id_for("evt_ab", "c")


def test_deliveries_round_trip_through_bytes() -> None:
    for delivery in fan_out(decoded_event(), [endpoint("ep_a"), endpoint("ep_b")]):
        assert Delivery.from_bytes(delivery.to_bytes()) == delivery


# Quarantine ---------------------------------------------------------------------------------------


def test_quarantine_keeps_the_original_bytes_and_says_where_and_why() -> None:
    raw = b"\xc3\x01not really avro \x00\xff"
    output = quarantine(
        SETTINGS,
        value=raw,
        key=b"acct_1",
        topic="velourcity.orders",
        partition=4,
        offset=1234,
        reason="unknown_fingerprint",
        error="writer schema fingerprint 0011 is not in schemas/",
    )
    assert output.topic == SETTINGS.topic(QUARANTINE)
    assert output.value == raw
    assert output.key == b"acct_1"
    headers = dict(output.headers)
    assert len(headers) == len(output.headers)
    assert headers["velourcity-quarantine-reason"] == b"unknown_fingerprint"
    assert headers["velourcity-quarantine-error"].startswith(b"writer schema fingerprint")
    assert headers["velourcity-source-topic"] == b"velourcity.orders"
    assert headers["velourcity-source-partition"] == b"4"
    assert headers["velourcity-source-offset"] == b"1234"
    assert int(headers["velourcity-quarantined-at"]) > 1_700_000_000_000


def test_quarantine_of_an_empty_record_and_a_long_error() -> None:
    output = quarantine(
        SETTINGS,
        value=None,
        key=None,
        topic="velourcity.payments",
        partition=0,
        offset=0,
        reason="missing_header",
        error="e" * 10_000,
    )
    assert output.value == b""
    assert output.key == b""
    headers = dict(output.headers)
    assert len(headers["velourcity-quarantine-error"]) <= 1000
    assert headers["velourcity-source-offset"] == b"0"


def test_quarantine_topic_carries_the_prefix() -> None:
    settings = Settings(topic_prefix="t123-")
    output = quarantine(
        settings, value=b"x", key=None, topic="t", partition=0, offset=1, reason="r", error="e"
    )
    assert output.topic == "t123-" + QUARANTINE


# Content filters ------------------------------------------------------------------------------


def test_a_content_filter_keeps_out_the_events_it_does_not_match() -> None:
    from pipeline.observability import FILTERED_OUT

    decoded = decoded_event("order.created")
    restaurant = decoded.event["data"]["restaurant_id"]
    matching = endpoint("ep_match", filter=f'data.restaurant_id == "{restaurant}"')
    other = endpoint("ep_other", filter='data.restaurant_id == "rst_none"')
    plain = endpoint("ep_plain")
    before = FILTERED_OUT.labels("ep_other")._value.get()
    assert targets(fan_out(decoded, [matching, other, plain])) == ["ep_match", "ep_plain"]
    assert FILTERED_OUT.labels("ep_other")._value.get() == before + 1
    assert FILTERED_OUT.labels("ep_match")._value.get() == 0


def test_a_filter_sees_the_body_the_partner_receives() -> None:
    decoded = decoded_event("order.created")
    body = orjson.loads(fan_out(decoded, [endpoint("ep_1")])[0].body)
    at = body["created_at"]  # a string in the body (a datetime in the decoded event)
    keep = endpoint("ep_keep", filter=f'created_at == "{at}" and account_id == "acct_1"')
    assert targets(fan_out(decoded, [keep])) == ["ep_keep"]


def test_an_endpoint_written_before_filters_existed_has_none() -> None:
    raw = orjson.loads(endpoint("ep_old").to_json())
    del raw["filter"]
    old = Endpoint.from_json(orjson.dumps(raw))
    assert old.filter is None and old.matches({"anything": 1})
