"""Content filters and custom headers on the real stack (real broker, worker process,
receivers): an endpoint with a filter receives only the events whose body it matches, one
without receives them all; an endpoint's custom headers go out with every webhook, beside the
signature."""

from __future__ import annotations

import time

import orjson
import pytest
from test_delivery import publish

from pipeline.endpoints import EndpointWriter, new_endpoint
from pipeline.events.samples import sample_event
from pipeline.receiver import verify

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]


def test_an_endpoint_gets_only_the_events_its_filter_matches(
    kafka_settings, receiver_factory, worker_factory
) -> None:
    filtered, unfiltered = receiver_factory(), receiver_factory()
    writer = EndpointWriter(kafka_settings)
    writer.put(
        new_endpoint(
            kafka_settings,
            account_id="acct_f",
            url=filtered.url,
            filter='data.restaurant_id in ["rst_111", "rst_222"] and type == "order.created"',
        )
    )
    writer.put(new_endpoint(kafka_settings, account_id="acct_f", url=unfiltered.url))
    worker = worker_factory(kafka_settings)

    events = []
    for restaurant in ("rst_111", "rst_333", "rst_222", "rst_444"):
        for event_type in ("order.created", "order.delivered"):
            event = sample_event(event_type, "acct_f")
            event["data"]["restaurant_id"] = restaurant
            events.append(event)
    publish(kafka_settings, events)

    filtered.wait_for(2)
    unfiltered.wait_for(len(events))  # the other endpoint sees every one
    time.sleep(1)  # and the filtered one has had the time to get more, if it were to
    got = [orjson.loads(r.body) for r in filtered.requests]
    assert sorted((g["type"], g["data"]["restaurant_id"]) for g in got) == [
        ("order.created", "rst_111"),
        ("order.created", "rst_222"),
    ]
    assert "Traceback" not in worker.log()


def test_custom_headers_go_out_with_every_webhook(
    kafka_settings, receiver_factory, worker_factory
) -> None:
    receiver = receiver_factory()
    token = "tok_live_0123456789abcdef"
    endpoint = new_endpoint(
        kafka_settings,
        account_id="acct_h",
        url=receiver.url,
        headers={"X-Partner-Token": token, "Authorization": "Bearer gw-123"},
    )
    EndpointWriter(kafka_settings).put(endpoint)
    worker = worker_factory(kafka_settings)
    publish(kafka_settings, [sample_event("order.created", "acct_h") for _ in range(3)])
    for request in receiver.wait_for(3):
        assert request.headers["X-Partner-Token"] == token
        assert request.headers["Authorization"] == "Bearer gw-123"
        verify(request.headers, request.body, endpoint.secret)  # still signed as before
    assert token not in worker.log()
