"""Content filters on the real stack: an endpoint with a filter receives only the events whose
body it matches, one without receives them all (real broker, worker process, receivers)."""

from __future__ import annotations

import time

import orjson
import pytest
from test_delivery import publish

from pipeline.endpoints import EndpointWriter, new_endpoint
from pipeline.events.samples import sample_event

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
