"""Prometheus metrics of the API: requests by route and status, and their latency, served at
``/metrics`` beside the API. Routes are labelled by their template (``/v1/endpoints/{id}``),
never by the path itself, so ids do not multiply the series."""

from __future__ import annotations

import time

from fastapi import FastAPI
from prometheus_client import Counter, Histogram, make_asgi_app
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter(
    "velourcity_api_requests", "API requests by route and status.", ["method", "route", "status"]
)
REQUEST_SECONDS = Histogram(
    "velourcity_api_request_duration_seconds",
    "API request latency by route.",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


class RequestMetrics:
    """ASGI middleware counting every HTTP request once it is answered."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._app(scope, receive, send_status)
        finally:
            route = self._route(scope)
            REQUESTS.labels(scope["method"], route, str(status)).inc()
            REQUEST_SECONDS.labels(scope["method"], route).observe(time.perf_counter() - started)

    @staticmethod
    def _route(scope: Scope) -> str:
        """The template of the route that answered (routing leaves it in the scope)."""
        route = scope.get("route")
        return str(getattr(route, "path", None) or "unmatched")


def install_metrics(app: FastAPI) -> None:
    app.mount("/metrics", make_asgi_app())
    app.add_middleware(RequestMetrics)
