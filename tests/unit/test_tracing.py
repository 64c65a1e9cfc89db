"""Tracing (pipeline/tracing.py) without a broker: off, the event's own trace context is passed
on untouched and no span is made; on, publish → fan-out → attempt are one trace, parent to
child, and the webhook carries the attempt span's context."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pipeline import tracing
from pipeline.delivery.handler import DeliveryHandler
from pipeline.delivery.http import new_http_sender
from pipeline.endpoints.model import Endpoint, new_secret
from pipeline.events import default_registry, encode
from pipeline.events.samples import sample_event
from pipeline.settings import Settings
from pipeline.worker import FanoutBatch, _traceparent

SETTINGS = Settings(allowed_networks="127.0.0.0/8", topic_prefix="t-")
REGISTRY = default_registry()
THEIRS = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def endpoint() -> Endpoint:
    return Endpoint(
        id="ep_1",
        account_id="acct_1",
        url="http://127.0.0.1:9/hooks",
        event_types=None,
        secret=new_secret(),
        created_at=1_760_000_000_000,
        updated_at=1_760_000_000_000,
    )


class Endpoints:
    def for_account(self, account_id: str) -> tuple[Endpoint, ...]:
        return (endpoint(),)

    def get(self, endpoint_id: str) -> Endpoint | None:
        return endpoint()


def domain_event(traceparent: str | None) -> Any:
    event = sample_event("order.created", "acct_1", rng=random.Random(3))
    value = encode(event, REGISTRY.current("order.created"))
    headers = [("velourcity-event-type", b"order.created")]
    if traceparent is not None:
        headers.append(("traceparent", traceparent.encode()))
    message = SimpleNamespace(value=value, key=b"k", topic="t-o", partition=0, offset=0)
    message.headers = headers
    return SimpleNamespace(message=message)


def fan_out_and_send(traceparent: str | None) -> tuple[Any, httpx.Request]:
    """One event through the fan-out's batch body and the handler's attempt (MockTransport)."""
    seen: list[httpx.Request] = []

    async def receive(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    async def scenario() -> Any:
        (output,) = await FanoutBatch(SETTINGS, REGISTRY, Endpoints())([domain_event(traceparent)])
        from pipeline.delivery.record import Delivery

        delivery = Delivery.from_bytes(output.value)
        sender = new_http_sender(SETTINGS, transport=httpx.MockTransport(receive))
        try:
            await DeliveryHandler(SETTINGS, Endpoints(), sender).handle(delivery)  # type: ignore[arg-type]
        finally:
            await sender.aclose()
        return delivery

    delivery = asyncio.run(scenario())
    (request,) = seen
    return delivery, request


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    assert tracing.configure(SETTINGS, "test", exporter=exporter)
    try:
        yield exporter
    finally:
        tracing.shutdown()


def test_off_by_default_and_the_events_own_context_passes_through() -> None:
    assert not tracing.enabled()
    delivery, request = fan_out_and_send(THEIRS)
    assert delivery.traceparent == THEIRS
    assert request.headers["traceparent"] == THEIRS


def test_off_and_no_context_no_header() -> None:
    delivery, request = fan_out_and_send(None)
    assert delivery.traceparent is None
    assert "traceparent" not in request.headers


def test_a_malformed_traceparent_is_dropped() -> None:
    assert _traceparent([("traceparent", b"00-zz-not-a-trace")]) is None
    assert _traceparent({"traceparent": THEIRS}) == THEIRS
    delivery, request = fan_out_and_send("01-" + THEIRS[3:] + "-extra")
    assert delivery.traceparent is None and "traceparent" not in request.headers


def test_off_imports_nothing_of_opentelemetry() -> None:
    code = (
        "import sys, pipeline.worker, pipeline.publisher, pipeline.delivery.handler; "
        "print(any(m.startswith('opentelemetry') for m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_on_fan_out_and_attempt_continue_the_events_trace(spans: InMemorySpanExporter) -> None:
    delivery, request = fan_out_and_send(THEIRS)
    finished = {s.name: s for s in spans.get_finished_spans()}
    fanout, attempt = finished["fanout order.created"], finished["POST webhook"]
    trace_id = int(THEIRS.split("-")[1], 16)
    assert fanout.context.trace_id == attempt.context.trace_id == trace_id
    assert fanout.parent is not None and fanout.parent.span_id == int(THEIRS.split("-")[2], 16)
    assert attempt.parent is not None and attempt.parent.span_id == fanout.context.span_id
    assert attempt.attributes is not None
    assert attempt.attributes["http.response.status_code"] == 200
    assert attempt.attributes["velourcity.endpoint_id"] == "ep_1"
    sent = request.headers["traceparent"]
    assert sent == f"00-{trace_id:032x}-{attempt.context.span_id:016x}-01"
    assert delivery.traceparent == f"00-{trace_id:032x}-{fanout.context.span_id:016x}-01"


def test_on_without_a_context_a_trace_starts_at_the_fan_out(spans: InMemorySpanExporter) -> None:
    _, request = fan_out_and_send(None)
    finished = {s.name: s for s in spans.get_finished_spans()}
    assert finished["fanout order.created"].parent is None
    trace_id = finished["POST webhook"].context.trace_id
    assert request.headers["traceparent"].split("-")[1] == f"{trace_id:032x}"


def test_a_partner_may_not_set_the_trace_headers() -> None:
    from pipeline.endpoints.model import check_headers
    from pipeline.exceptions import InvalidEndpoint

    for name in ("traceparent", "TraceState"):
        with pytest.raises(InvalidEndpoint, match="set by the pipeline"):
            check_headers({name: THEIRS})


def test_sampling_is_decided_where_a_trace_starts_and_followed_after() -> None:
    exporter = InMemorySpanExporter()
    unsampled = SETTINGS.model_copy(update={"trace_sample_ratio": 0.0})
    assert tracing.configure(unsampled, "test", exporter=exporter)
    try:
        _, request = fan_out_and_send(None)  # a trace that starts here, at ratio 0
        assert exporter.get_finished_spans() == ()  # nothing recorded nor exported
        flags = int(request.headers["traceparent"].rsplit("-", 1)[1], 16)
        assert flags & 1 == 0  # the context goes on, its "sampled" bit clear
        _, request = fan_out_and_send(THEIRS)  # the publisher sampled it: followed here
        names = sorted(s.name for s in exporter.get_finished_spans())
        assert names == ["POST webhook", "fanout order.created"]
        assert int(request.headers["traceparent"].rsplit("-", 1)[1], 16) & 1 == 1
    finally:
        tracing.shutdown()
