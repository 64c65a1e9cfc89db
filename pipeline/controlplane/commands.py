"""The control plane for commands that are not the API: ``velourcity endpoints``, ``velourcity
listen``, the demo, the benchmark and the chaos suite.

Each call runs its change through the store (:class:`ControlPlane`, one transaction with its
outbox row) in an event loop and pool of its own, then has the outbox relayed before it returns
(:func:`~pipeline.controlplane.relay.flush_outbox`: here when no relay runs, else by the relay
that does). So what a command made is in PostgreSQL, where the API lists it, and on the
compacted endpoints topic, where the workers see it; never in one and not the other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from pipeline.controlplane.relay import flush_outbox
from pipeline.controlplane.store import ControlPlane
from pipeline.db import async_pool, migrate, unavailable_as_error
from pipeline.endpoints.model import Endpoint
from pipeline.endpoints.store import EndpointWriter
from pipeline.exceptions import PublishError
from pipeline.settings import Settings

T = TypeVar("T")


def on_store(settings: Settings, use: Callable[[ControlPlane], Awaitable[T]]) -> tuple[T, bool]:
    """Run ``use`` with the store, then relay the outbox; returns what ``use`` returned and
    whether every change is on the topics (False: saved, and a relay sends it later)."""

    async def main() -> T:
        with unavailable_as_error("control plane"):
            async with async_pool(settings) as pool:
                return await use(ControlPlane(pool))

    result = asyncio.run(main())
    return result, flush_outbox(settings)


def _relayed(settings: Settings, use: Callable[[ControlPlane], Awaitable[T]], what: str) -> T:
    result, relayed = on_store(settings, use)
    if not relayed:
        raise PublishError(f"{what}: saved in PostgreSQL, but not yet on the endpoints topic")
    return result


def put_endpoints(settings: Settings, endpoints: Iterable[Endpoint]) -> None:
    """Create these endpoints (new ids), on the topic before this returns (else PublishError)."""
    wanted = list(endpoints)

    async def create(store: ControlPlane) -> None:
        for endpoint in wanted:
            await store.create_endpoint(endpoint)

    _relayed(settings, create, f"{len(wanted)} endpoints")


def delete_endpoint(settings: Settings, endpoint: Endpoint) -> bool:
    """Delete the endpoint (its tombstone on the topic before this returns); False: it was
    not there."""

    async def delete(store: ControlPlane) -> bool:
        return await store.delete_endpoint(endpoint.id, endpoint.account_id)

    return _relayed(settings, delete, f"endpoint {endpoint.id} deleted")


def endpoints_of(settings: Settings, account_id: str | None) -> list[Endpoint]:
    """Every endpoint of the account (of every account: ``None``), as committed."""

    async def every(store: ControlPlane) -> list[Endpoint]:
        found: list[Endpoint] = []
        while page := await store.endpoints_of(account_id, after=found[-1].id if found else None):
            found.extend(f.endpoint for f in page)
        return found

    return on_store(settings, every)[0]


def put_endpoints_for_tools(settings: Settings, endpoints: Iterable[Endpoint]) -> None:
    """For the benchmark and the chaos suite: through the store (migrated first), as the API
    would, when the settings name a database (``VELOURCITY_DATABASE_URL``, which ``make test``
    and CI always set); else straight to the compacted topic. What they measure or break (the
    broker, the workers) reads only the topic, so they need no PostgreSQL to run."""
    if "database_url" in settings.model_fields_set:
        migrate(settings)
        put_endpoints(settings, endpoints)
        return
    writer = EndpointWriter(settings)
    for endpoint in endpoints:
        writer.put(endpoint)
