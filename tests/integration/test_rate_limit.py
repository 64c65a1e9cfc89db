"""An endpoint's rate limit spaces the attempts it receives; other endpoints are not slowed."""

from __future__ import annotations

import itertools
import time

import pytest
from test_delivery import publish

from pipeline.endpoints import EndpointWriter, new_endpoint
from pipeline.events.samples import sample_event

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]


def test_rate_limited_endpoint_gets_spaced_attempts(
    kafka_settings, receiver_factory, worker_factory
) -> None:
    arrivals: list[float] = []

    def timed(_request: object, _n: int) -> tuple[int, dict[str, str]]:
        arrivals.append(time.monotonic())
        return 200, {}

    limited, free = receiver_factory(timed), receiver_factory()
    writer = EndpointWriter(kafka_settings)
    for account, receiver, rate in (("acct_slow", limited, 5.0), ("acct_free", free, None)):
        writer.put(
            new_endpoint(kafka_settings, account_id=account, url=receiver.url, rate_limit=rate)
        )
    worker_factory(kafka_settings)
    count = 15
    publish(
        kafka_settings,
        [
            sample_event("order.created", a)
            for a in ("acct_slow", "acct_free")
            for _ in range(count)
        ],
    )
    free.wait_for(count, timeout=30)
    limited.wait_for(count, timeout=60)
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    # 5 per second: sent 0.2 s apart. Arrival times jitter each way (the first request also
    # opens the connection: a CI run saw the whole run 2.746 s long for 2.8 s of turns), so
    # one gap may look shorter, but there is no burst and the whole run takes its time
    # (unlimited, 15 requests arrive within a few milliseconds).
    assert min(gaps) >= 0.1, gaps
    assert arrivals[-1] - arrivals[0] >= (count - 1) * 0.2 - 0.15
