"""What the API reads from and writes to, as small interfaces, and their real implementation.

Accounts, keys and endpoints are read and written in PostgreSQL (:mod:`pipeline.controlplane`;
each change reaches the compacted topics through the outbox relay this process runs); the
delivery log is read from PostgreSQL too (what the log sink wrote there); the rest is read from
Kafka. Unit tests pass the in-memory fakes of ``tests/api_fakes.py`` instead; integration tests
use the real ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from pipeline.accounts import Account, ApiKey
from pipeline.controlplane import ControlPlane, VersionedAccount, VersionedEndpoint
from pipeline.controlplane.importer import import_from_kafka
from pipeline.controlplane.relay import OutboxRelay
from pipeline.controlplane.writeback import WorkerDisables
from pipeline.db import async_pool, migrate
from pipeline.deadletters import send_again
from pipeline.delivery.record import Delivery
from pipeline.deliverylog import DeliveryView, Page, Status
from pipeline.deliverylog.reads import DeliveryLog
from pipeline.deliverylog.sink import LogSink
from pipeline.endpoints import Endpoint
from pipeline.exceptions import BrokerUnavailable, DatabaseUnavailable
from pipeline.health import HealthCache
from pipeline.portal import PortalLinks, PortalStore
from pipeline.settings import Settings

log = structlog.get_logger(__name__)


class ControlPlaneStore(Protocol):
    """Accounts, keys and endpoints (:class:`pipeline.controlplane.ControlPlane`). Every method
    may raise DatabaseUnavailable; conditional writes raise StaleVersion."""

    async def account(self, account_id: str) -> VersionedAccount | None: ...

    async def authenticate(self, api_key: str) -> Account | None: ...

    async def create_account(self, account: Account) -> VersionedAccount: ...

    async def add_key(self, account_id: str) -> tuple[VersionedAccount, str] | None: ...

    async def revoke_key(self, account_id: str, prefix: str) -> ApiKey | None: ...

    async def endpoint(self, endpoint_id: str) -> VersionedEndpoint | None: ...

    async def endpoints_of(
        self, account_id: str | None, *, after: str | None = None, limit: int = 100
    ) -> list[VersionedEndpoint]: ...

    async def create_endpoint(self, endpoint: Endpoint) -> VersionedEndpoint: ...

    async def update_endpoint(
        self,
        endpoint_id: str,
        account_id: str,
        changes: Mapping[str, Any],
        *,
        if_version: int | None = None,
    ) -> VersionedEndpoint | None: ...

    async def rotate_secret(
        self, endpoint_id: str, account_id: str, grace_seconds: int
    ) -> VersionedEndpoint | None: ...

    async def delete_endpoint(
        self, endpoint_id: str, account_id: str, *, if_version: int | None = None
    ) -> bool: ...


class HealthReader(Protocol):
    def get(self, endpoint_id: str) -> dict[str, Any] | None: ...


class DeliveryLogReader(Protocol):
    """The delivery log (:mod:`pipeline.deliverylog.reads`); each method may raise
    DatabaseUnavailable, and ``page`` raises ValueError for a cursor it did not give out."""

    async def page(
        self,
        account_id: str,
        *,
        endpoint_id: str | None = None,
        event_type: str | None = None,
        status: Status | None = None,
        since: int | None = None,
        until: int | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page: ...

    async def get(self, account_id: str, delivery_id: str) -> DeliveryView | None: ...

    async def matching(
        self, account_id: str, *, endpoint_id: str | None, status: Status, since: int
    ) -> list[DeliveryView]: ...

    async def per_minute(
        self, account_id: str, *, endpoint_id: str | None, since: int
    ) -> dict[int, dict[str, int]]: ...


class DeliverySender(Protocol):
    def send(self, deliveries: list[Delivery]) -> int:
        """Put deliveries on the deliveries topic at attempt 1 (acked); return how many."""
        ...


class KafkaDeliverySender:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def send(self, deliveries: list[Delivery]) -> int:
        return send_again(self._settings, deliveries)


@dataclass(frozen=True, slots=True, kw_only=True)
class Backends:
    control: ControlPlaneStore
    delivery_log: DeliveryLogReader
    delivery_sender: DeliverySender
    health: HealthReader
    portal: PortalStore


@asynccontextmanager
async def kafka_backends(
    settings: Settings,
    ready_seconds: float = 60.0,
    *,
    run_sink: bool = True,
    run_relay: bool = True,
) -> AsyncIterator[Backends]:
    """The real backends, with the caches loaded before the API takes requests. The database is
    migrated and the compacted topics imported once (:func:`prepare_database`); the pool opens
    without waiting for PostgreSQL (requests answer 503 until it answers). With ``run_sink``
    this process also runs the log sink (one consumer group across processes); with
    ``run_relay`` an outbox relay (one at a time relays, across them), and writes back the
    endpoints workers disabled (:mod:`pipeline.controlplane.writeback`)."""
    await asyncio.to_thread(prepare_database, settings)
    pool = async_pool(settings)
    await pool.open(wait=False)  # requests answer 503 while PostgreSQL does not
    relay = OutboxRelay(settings).start() if run_relay else None
    disables = WorkerDisables(settings).start() if run_relay else None
    health = HealthCache(settings).start()
    sink = LogSink(settings).start() if run_sink else None
    try:
        await health.wait_ready_async(ready_seconds)
        yield Backends(
            control=ControlPlane(pool),
            delivery_log=DeliveryLog(pool),
            delivery_sender=KafkaDeliverySender(settings),
            health=health,
            portal=PortalLinks(pool),
        )
    finally:
        health.stop()
        if sink is not None:
            await asyncio.to_thread(sink.stop)
        if relay is not None:
            await asyncio.to_thread(relay.stop)
        if disables is not None:
            await asyncio.to_thread(disables.stop)
        await pool.close()


def prepare_database(settings: Settings) -> None:
    """Migrate, then import the compacted topics once. PostgreSQL down: logged, and the API
    starts anyway (its control-plane routes answer 503 until the database is back)."""
    try:
        migrate(settings)
        imported = import_from_kafka(settings)
    except (DatabaseUnavailable, BrokerUnavailable) as exc:
        log.error("database not prepared", error=str(exc))
        return
    if imported is not None:
        log.info("imported from Kafka", accounts=imported[0], endpoints=imported[1])
