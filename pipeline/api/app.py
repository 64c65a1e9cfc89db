"""The API application, built by :func:`create_api` (nothing is built at import time)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.routing import APIRoute

from pipeline.api import accounts, catalog, dashboard, deliveries, endpoints, portal
from pipeline.api.backends import Backends, kafka_backends
from pipeline.api.context import ApiConfig
from pipeline.api.errors import BodyLimit, ErrorBody, install_error_handlers
from pipeline.api.metrics import install_metrics
from pipeline.delivery.ssrf import SyncResolver
from pipeline.settings import Settings

MAX_BODY_BYTES = 64 * 1024
_ERRORS = {
    status: {"model": ErrorBody, "description": what}
    for status, what in [
        (400, "Malformed JSON"),
        (401, "Missing or wrong credentials"),
        (403, "A portal link may not do this (read-only, or it needs the account's API key)"),
        (404, "Not found (or another account's)"),
        (413, "Body too large"),
        (422, "A field is missing, of the wrong type, unknown or refused"),
        (
            503,
            "Not ready, not configured, the broker did not acknowledge the write, or the"
            " database is unavailable (database_unavailable)",
        ),
    ]
}


def _operation_id(route: APIRoute) -> str:
    return route.name  # e.g. "create_endpoint": what generated clients call the method


def create_api(
    settings: Settings,
    *,
    backends: Backends | None = None,
    resolver: SyncResolver | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    run_sink: bool = True,
    run_relay: bool = True,
) -> FastAPI:
    """The API. Without ``backends`` it reads and writes the control plane in the PostgreSQL
    of ``settings`` (migrated when the server starts), reads the delivery log there too, and
    the rest from its Kafka topics, loaded when the server starts (requests before that answer
    503); ``run_sink`` runs the log sink and ``run_relay`` an outbox relay in this process."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if backends is not None:
            yield
            return
        async with kafka_backends(settings, run_sink=run_sink, run_relay=run_relay) as loaded:
            app.state.backends = loaded
            yield
            app.state.backends = None

    app = FastAPI(
        title="Velourcity Webhooks API",
        version="1",
        description="Accounts, API keys and webhook endpoints. Errors are "
        '`{"error": {"code", "message", "field"}}`.',
        lifespan=lifespan,
        responses=_ERRORS,  # type: ignore[arg-type]
        generate_unique_id_function=_operation_id,
    )
    app.state.config = ApiConfig(settings=settings, resolver=resolver)
    app.state.backends = backends
    install_error_handlers(app)
    app.include_router(accounts.router)
    app.include_router(endpoints.router)
    app.include_router(deliveries.router)
    app.include_router(catalog.router)
    app.include_router(portal.router)
    app.include_router(dashboard.router)
    portal.install_audit(app)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    install_metrics(app)
    return app
