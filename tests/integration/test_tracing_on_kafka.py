"""Tracing on the real stack: a publisher and a worker exporting over OTLP/HTTP to a collector
on 127.0.0.1 (a real HTTP server decoding the protobuf requests): publish → fan-out → attempt
are one trace, each span the child of the one before, and the webhook carries it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from test_delivery import publish, register
from velourcity_bench.collector import SpanCollector

from pipeline import tracing
from pipeline.events.samples import sample_event
from pipeline.topics import create_topics

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]


@pytest.fixture
def collector() -> Iterator[SpanCollector]:
    found = SpanCollector(keep=True)
    yield found
    found.close()
    tracing.shutdown()  # this process's publisher traced too


def test_one_trace_from_publish_to_the_webhook(
    settings_factory, receiver_factory, worker_factory, collector, monkeypatch
) -> None:
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "200")  # the worker exports within 0.2 s
    settings = settings_factory(otlp_endpoint=collector.url)
    create_topics(settings)
    receiver = receiver_factory()
    register(settings, "acct_t", receiver.url)
    worker = worker_factory(settings)
    publish(settings, [sample_event("order.created", "acct_t")])
    (request,) = receiver.wait_for(1)
    tracing.shutdown()  # the publisher's spans: exported now

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not collector.named("POST webhook"):
        time.sleep(0.2)
    ((publisher, published),) = collector.named("publish order.created")
    ((fanned, fanout),) = collector.named("fanout order.created")
    ((sent, attempt),) = collector.named("POST webhook")
    assert (publisher, fanned, sent) == (
        "velourcity-publisher",
        "velourcity-worker",
        "velourcity-worker",
    )
    assert published.trace_id == fanout.trace_id == attempt.trace_id
    assert fanout.parent_span_id == published.span_id
    assert attempt.parent_span_id == fanout.span_id
    version, trace_id, span_id, flags = request.headers["traceparent"].split("-")
    assert (version, trace_id, span_id) == ("00", attempt.trace_id.hex(), attempt.span_id.hex())
    assert int(flags, 16) & 1  # sampled
    assert "Traceback" not in worker.log()
