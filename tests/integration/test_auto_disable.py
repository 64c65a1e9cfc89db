"""An endpoint failing without a success for `auto_disable_days` is disabled with the reason
recorded, and the account's other endpoints that subscribe get an `endpoint.disabled` webhook."""

from __future__ import annotations

import time

import orjson
import pytest
from test_delivery import publish, register

from pipeline.endpoints import load_endpoints
from pipeline.events.samples import sample_event
from pipeline.receiver import verify
from pipeline.topics import create_topics

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]


def test_an_endpoint_failing_too_long_is_disabled_and_the_account_told(
    settings_factory, receiver_factory, worker_factory
) -> None:
    settings = settings_factory(
        auto_disable_days=3 / 86_400,  # three seconds
        breaker_failures=100,  # keep the breaker out of this test
        retry_schedule=",".join(["1"] * 20),
    )
    create_topics(settings)
    dead = receiver_factory(lambda _r, _n: (500, {}))
    watcher = receiver_factory()
    failing = register(settings, "acct_ops", dead.url, ["order.created"])
    told = register(settings, "acct_ops", watcher.url, ["endpoint.disabled"])
    worker_factory(settings)
    publish(settings, [sample_event("order.created", "acct_ops")])

    (notice,) = watcher.wait_for(1, timeout=60)
    event = verify(notice.headers, notice.body, told.secret)
    assert event["type"] == "endpoint.disabled"
    assert event["data"]["endpoint_id"] == failing.id
    assert "failing without a success since" in event["data"]["reason"]
    assert notice.headers["X-Velourcity-Event"] == "endpoint.disabled"

    deadline = time.monotonic() + 10
    while load_endpoints(settings)[failing.id].enabled and time.monotonic() < deadline:
        time.sleep(0.2)
    record = load_endpoints(settings)[failing.id]
    assert not record.enabled
    assert record.disabled_reason == event["data"]["reason"]
    tries = len(dead.requests)
    assert tries >= 3  # it kept failing for the whole window first
    time.sleep(2.5)
    assert len(dead.requests) == tries  # and nothing more is sent to it
    assert orjson.loads(notice.body)["account_id"] == "acct_ops"
