"""Tracing: OpenTelemetry spans from ``Publisher.send`` through the fan-out to each attempt.

The W3C ``traceparent`` travels with the event: in the domain record's Kafka headers, then in
the delivery record (so retries, dead letters and replays keep it), and out on every webhook
as a ``traceparent`` header, so a partner can tie a webhook to the order that caused it.

Off by default, and then cost-free: nothing of OpenTelemetry is imported, no span is made, and
a ``traceparent`` that came with an event (a domain service traced on its own) is passed along
unchanged. With ``VELOURCITY_OTLP_ENDPOINT`` (e.g. ``http://collector:4318``) each process
exports its spans over OTLP/HTTP in batches (``velourcity-worker``, ``velourcity-api``, the
publisher as its caller names it), each span a child of the one before it:
``publish {type}`` (producer) → ``fanout {type}`` (consumer) → ``POST webhook`` (client, one a
attempt, with the endpoint, attempt number, status and outcome).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from pipeline.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

HEADER = "traceparent"
_VALID = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
_tracer: Tracer | None = None
_provider: TracerProvider | None = None


def configure(
    settings: Settings, service_name: str, *, exporter: SpanExporter | None = None
) -> bool:
    """Export this process's spans when ``otlp_endpoint`` is set (or to ``exporter``, at
    once: tests); True when tracing is on. The provider is the pipeline's own, not the global
    one: a domain service with OpenTelemetry of its own keeps its provider."""
    global _tracer, _provider
    if not settings.otlp_endpoint and exporter is None:
        return False
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    # a trace is sampled (or not) where it starts; every later span follows its parent's flag
    sampler = ParentBased(TraceIdRatioBased(settings.trace_sample_ratio))
    provider = TracerProvider(
        resource=Resource.create({"service.name": service_name}), sampler=sampler
    )
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        assert settings.otlp_endpoint is not None
        endpoint = settings.otlp_endpoint.rstrip("/") + "/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    _provider, _tracer = provider, provider.get_tracer("velourcity")
    return True


def enabled() -> bool:
    return _tracer is not None


def shutdown() -> None:
    """Export what is left and turn tracing off (a process that stops; tests)."""
    global _tracer, _provider
    if _provider is not None:
        _provider.shutdown()
    _provider = _tracer = None


def valid(traceparent: str | None) -> str | None:
    """The header if it is a W3C ``traceparent`` (version 00), else None: what came from
    outside is passed on only when well-formed."""
    return traceparent if traceparent is not None and _VALID.fullmatch(traceparent) else None


@contextmanager
def span(
    name: str, parent: str | None, kind: str, attributes: dict[str, Any] | None = None
) -> Iterator[Span | None]:
    """A span, child of ``parent`` (a ``traceparent``); yields None when tracing is off."""
    if _tracer is None:
        yield None
        return
    from opentelemetry.trace import SpanKind
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    context = TraceContextTextMapPropagator().extract({HEADER: parent}) if parent else None
    with _tracer.start_as_current_span(
        name, context=context, kind=getattr(SpanKind, kind), attributes=attributes
    ) as current:
        yield current


def traceparent_of(current: Span | None, inherited: str | None) -> str | None:
    """What travels on: the span's own context, or (tracing off) what came in."""
    if current is None:
        return inherited
    context = current.get_span_context()
    if not context.is_valid:
        return inherited
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def caller_traceparent() -> str | None:
    """The caller's current span (a domain service instrumented with OpenTelemetry of its
    own), when tracing is off here but OpenTelemetry is loaded there."""
    import sys

    if "opentelemetry.trace" not in sys.modules:  # not loaded: nobody is tracing
        return None
    from opentelemetry import trace

    return traceparent_of(trace.get_current_span(), None)
