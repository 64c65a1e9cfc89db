"""An endpoint failing hard opens its circuit breaker: attempts stop reaching it (without
using up the deliveries' attempts) until a probe after the cooldown, and a successful probe
lets everything through. Real broker, worker and receiver."""

from __future__ import annotations

import time

import orjson
import pytest
from test_delivery import publish, register

from pipeline.events.samples import sample_event
from pipeline.topics import ENDPOINT_HEALTH, create_topics

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]


def test_breaker_opens_probes_and_closes(
    settings_factory, receiver_factory, worker_factory, read_topic
) -> None:
    settings = settings_factory(
        breaker_failures=3,
        breaker_cooldown=4,
        endpoint_max_in_flight=1,  # one request at a time, so the count below is exact
        retry_schedule="1,1,1,1,1,1,1,1",
    )
    create_topics(settings)
    down = {"on": True}
    receiver = receiver_factory(lambda _r, _n: (500, {}) if down["on"] else (200, {}))
    endpoint = register(settings, "acct_b", receiver.url)
    worker = worker_factory(settings)
    events = [sample_event("order.created", "acct_b") for _ in range(10)]
    publish(settings, events)

    receiver.wait_for(3, timeout=30)
    time.sleep(2.5)  # well inside the 4 s cooldown: the breaker holds every delivery back
    assert len(receiver.requests) == 3

    receiver.wait_for(4, timeout=15)  # the half-open probe after the cooldown
    time.sleep(0.5)
    assert len(receiver.requests) == 4  # one probe, not a burst
    down["on"] = False
    got = receiver.wait_for(4 + len(events), timeout=60)

    delivered = {r.headers["webhook-id"] for r in got if r is not None}
    assert delivered == {e["id"] for e in events}
    # Skipped deliveries kept their attempt numbers: none came near the 9 attempts of the
    # schedule, though the breaker held them back through several 1 s tiers.
    assert max(int(r.headers["X-Velourcity-Delivery-Attempt"]) for r in got) <= 3

    states = [
        orjson.loads(m.value())["breaker"]
        for m in read_topic(settings.topic(ENDPOINT_HEALTH), 3)
        if m.key() == endpoint.id.encode()
    ]
    assert states[:3] == ["open", "half_open", "open"] or states[:3] == [
        "open",
        "half_open",
        "closed",
    ]
    assert "Traceback" not in worker.log()
