"""What the API reads from and writes to, as small interfaces, and their real implementation.

Accounts and endpoints are read from in-memory copies of the compacted topics and written to
Kafka; the delivery log is read from PostgreSQL (what the log sink wrote there). Unit tests pass
the in-memory fakes of ``tests/api_fakes.py`` instead; integration tests use the real ones.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from pipeline.accounts import Account, AccountCache, AccountWriter
from pipeline.db import async_pool
from pipeline.deadletters import read_dead_letters, send_again
from pipeline.delivery.record import Delivery
from pipeline.deliverylog import DeliveryView, Page, Status
from pipeline.deliverylog.reads import DeliveryLog
from pipeline.deliverylog.sink import LogSink
from pipeline.endpoints import Endpoint, EndpointCache, EndpointWriter
from pipeline.health import HealthCache
from pipeline.portal import PortalLinks, PortalStore
from pipeline.settings import Settings


class EndpointReader(Protocol):
    def get(self, endpoint_id: str) -> Endpoint | None: ...

    def for_account(self, account_id: str) -> tuple[Endpoint, ...]: ...


class EndpointSink(Protocol):
    def put(self, endpoint: Endpoint) -> Endpoint: ...

    def delete(self, endpoint_id: str) -> None: ...


class AccountReader(Protocol):
    def get(self, account_id: str) -> Account | None: ...

    def authenticate(self, api_key: str) -> Account | None: ...


class AccountSink(Protocol):
    def put(self, account: Account) -> Account: ...


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


class DeadLetterReader(Protocol):
    def read(
        self, account_id: str, endpoint_id: str | None, since_ms: int
    ) -> list[tuple[Delivery, int]]:
        """An account's dead letters with when each was dead-lettered (unix ms)."""
        ...


class KafkaDeliverySender:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def send(self, deliveries: list[Delivery]) -> int:
        return send_again(self._settings, deliveries)


class KafkaDeadLetters:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def read(
        self, account_id: str, endpoint_id: str | None, since_ms: int
    ) -> list[tuple[Delivery, int]]:
        letters = read_dead_letters(self._settings, endpoint_id=endpoint_id, since_ms=since_ms)
        return [
            (letter.delivery, letter.dead_lettered_at)
            for letter in letters
            if letter.delivery.account_id == account_id
        ]


@dataclass(frozen=True, slots=True, kw_only=True)
class Backends:
    endpoints: EndpointReader
    endpoint_writer: EndpointSink
    accounts: AccountReader
    account_writer: AccountSink
    delivery_log: DeliveryLogReader
    delivery_sender: DeliverySender
    dead_letters: DeadLetterReader
    health: HealthReader
    portal: PortalStore


@asynccontextmanager
async def kafka_backends(
    settings: Settings, ready_seconds: float = 60.0, *, run_sink: bool = True
) -> AsyncIterator[Backends]:
    """The real backends, with the caches loaded before the API takes requests. The delivery log
    pool opens without waiting for PostgreSQL (reads answer 503 until it answers); with
    ``run_sink`` this process also runs the log sink (one consumer group across processes)."""
    endpoints, accounts = EndpointCache(settings).start(), AccountCache(settings).start()
    health = HealthCache(settings).start()
    pool = async_pool(settings)
    await pool.open(wait=False)
    sink = LogSink(settings).start() if run_sink else None
    try:
        await endpoints.wait_ready_async(ready_seconds)
        await accounts.wait_ready_async(ready_seconds)
        await health.wait_ready_async(ready_seconds)
        yield Backends(
            endpoints=endpoints,
            endpoint_writer=EndpointWriter(settings),
            accounts=accounts,
            account_writer=AccountWriter(settings),
            delivery_log=DeliveryLog(pool),
            delivery_sender=KafkaDeliverySender(settings),
            dead_letters=KafkaDeadLetters(settings),
            health=health,
            portal=PortalLinks(pool),
        )
    finally:
        endpoints.stop()
        accounts.stop()
        health.stop()
        if sink is not None:
            await asyncio.to_thread(sink.stop)
        await pool.close()


async def until(condition: Callable[[], bool], seconds: float) -> bool:
    """Wait (without blocking the event loop) until ``condition()`` holds; False on timeout.

    The API's read-your-writes: after a write is acked it waits for its own cache to show it.
    """
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.01)
    return True
