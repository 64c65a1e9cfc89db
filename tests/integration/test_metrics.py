"""A worker serves Prometheus metrics and writes one JSON log line per attempt."""

from __future__ import annotations

import socket
import time

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_delivery import publish, register

from pipeline.events.samples import sample_event
from pipeline.topics import create_topics

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(url, timeout=5).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.mark.parametrize("log_level", ["info", "debug"])
def test_worker_metrics_and_attempt_log_lines(
    settings_factory, receiver_factory, worker_factory, log_level
) -> None:
    port = _free_port()
    settings = settings_factory(metrics_port=port, retry_schedule="1", log_level=log_level)
    create_topics(settings)
    flaky = receiver_factory(lambda _r, n: (503, {}) if n == 0 else (200, {}))
    endpoint = register(settings, "acct_m", flaky.url)
    worker = worker_factory(settings)
    publish(settings, [sample_event("order.picked_up", "acct_m")])
    flaky.wait_for(2)

    url = f"http://127.0.0.1:{port}/metrics"
    delivered = (
        "velourcity_attempts_total",
        (("event_type", "order.picked_up"), ("outcome", "delivered")),
    )
    retried = (
        "velourcity_attempts_total",
        (("event_type", "order.picked_up"), ("outcome", "retry")),
    )
    deadline = time.monotonic() + 10
    while (samples := _samples(url)).get(delivered) != 1.0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert samples[delivered] == 1.0
    assert samples[retried] == 1.0
    assert samples[("velourcity_attempt_duration_seconds_count", ())] == 2.0
    assert samples[("velourcity_delivery_latency_seconds_count", ())] == 1.0
    lag_topics = {
        dict(labels)["topic"] for name, labels in samples if name == "velourcity_consumer_lag"
    }
    assert settings.topic("velourcity.deliveries") in lag_topics

    # at INFO (the default) the console shows the failed attempt only: the attempts topic
    # is the log of every webhook, and a line per delivered one cost a busy worker ~10 %
    lines = [orjson.loads(line) for line in worker.log().splitlines() if line.startswith("{")]
    attempts = [line for line in lines if line.get("event") == "attempt"]
    expected = [(1, 503, "retry")] + ([(2, 200, "delivered")] if log_level == "debug" else [])
    assert [(a["attempt"], a["status"], a["outcome"]) for a in attempts] == expected
    assert all(a["endpoint_id"] == endpoint.id for a in attempts)
    assert endpoint.secret not in worker.log()
