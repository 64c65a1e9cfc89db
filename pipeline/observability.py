"""Metrics (Prometheus) and logs (structlog) of the worker.

Metric names follow Prometheus conventions (``_total`` counters, ``_seconds`` histograms);
labels are bounded sets (outcome, event type, topic), never ids, so cardinality stays flat
however many endpoints there are.
"""

from __future__ import annotations

import logging
import sys

import structlog
from prometheus_client import Counter, Gauge, Histogram, start_http_server

from pipeline.settings import Settings

log = structlog.get_logger(__name__)

ATTEMPTS = Counter(
    "velourcity_attempts",
    "Delivery attempts by what came of them (delivered, retry, dead_lettered, ...).",
    ["outcome", "event_type"],
)
ATTEMPT_SECONDS = Histogram(
    "velourcity_attempt_duration_seconds",
    "One HTTP attempt, request sent to response read (or the error).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30),
)
DELIVERY_SECONDS = Histogram(
    "velourcity_delivery_latency_seconds",
    "From the event occurring to its delivery (2xx) at one endpoint, retries included.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200, 36000, 100000),
)
DEAD_LETTERS = Counter("velourcity_dead_letters", "Deliveries sent to the dead-letter topic.")
ENDPOINTS_DISABLED = Counter(
    "velourcity_endpoints_disabled", "Endpoints disabled by the pipeline (410 Gone)."
)
DEFERRED = Counter(
    "velourcity_deferred",
    "Deliveries deferred to the first retry tier because their endpoint had its full share.",
)
COPIES_SKIPPED = Counter(
    "velourcity_copies_skipped",
    "Deliveries the fan-out wrote again (after a crash or rebalance), not sent again.",
)
BREAKER_SKIPS = Counter(
    "velourcity_breaker_skips",
    "Deliveries not attempted because their endpoint's circuit breaker was open.",
)
BREAKERS_OPEN = Gauge(
    "velourcity_breakers_open", "Endpoints whose circuit breaker is open or half-open here."
)
FILTERED_OUT = Counter(
    "velourcity_filtered_out",
    "Events an endpoint subscribes to that its content filter kept from it (a series per"
    " endpoint with a filter).",
    ["endpoint_id"],
)
QUARANTINED = Counter(
    "velourcity_quarantined", "Input records set aside as undecodable or invalid.", ["reason"]
)
INTERNAL_ERRORS = Counter(
    "velourcity_internal_errors",
    "Bugs of ours that stopped an event's fan-out or a delivery's attempt (never counted"
    " against the endpoint; tried again, then quarantined).",
    ["stage"],
)
CONSUMER_LAG = Gauge(
    "velourcity_consumer_lag",
    "Records of a sender topic not yet taken by this worker (for a retry tier: its backlog).",
    ["topic"],
)


def serve_metrics(settings: Settings) -> None:
    """Serve ``/metrics`` in a background thread; a taken port is logged, not fatal."""
    if not settings.metrics_port:
        return
    try:
        start_http_server(settings.metrics_port, addr=settings.metrics_host)
    except OSError as exc:
        log.error("metrics not served", port=settings.metrics_port, error=str(exc))
        return
    log.info("metrics served", url=f"http://{settings.metrics_host}:{settings.metrics_port}/")


def configure_logging(settings: Settings) -> None:
    level = logging.getLevelName(settings.log_level.upper().replace("WARN", "WARNING"))
    renderer = (
        structlog.processors.JSONRenderer()
        if settings.log_format == "json"
        else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    # httpx logs every request at INFO through stdlib logging: the attempt line says more, and
    # formatting httpx's (through Faust's coloured formatter) was ~5 % of a busy worker's CPU
    logging.getLogger("httpx").setLevel(max(level, logging.WARNING))
