"""Tracing on the real stack: a publisher and a worker exporting over OTLP/HTTP to a collector
on 127.0.0.1 (a real HTTP server decoding the protobuf requests): publish → fan-out → attempt
are one trace, each span the child of the one before, and the webhook carries it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from test_delivery import publish, register

from pipeline import tracing
from pipeline.events.samples import sample_event
from pipeline.topics import create_topics

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]


class Collector:
    """Receives OTLP/HTTP trace exports; keeps every span with its service name."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, Any]] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                for resource in request.resource_spans:
                    service = next(
                        a.value.string_value
                        for a in resource.resource.attributes
                        if a.key == "service.name"
                    )
                    for scope in resource.scope_spans:
                        collector.spans.extend((service, s) for s in scope.spans)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def named(self, name: str) -> list[tuple[str, Any]]:
        return [(service, s) for service, s in self.spans if s.name == name]


@pytest.fixture
def collector() -> Iterator[Collector]:
    found = Collector()
    yield found
    found.server.shutdown()
    found.server.server_close()
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
