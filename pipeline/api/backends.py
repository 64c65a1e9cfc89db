"""What the API reads from and writes to, as small interfaces, and their Kafka implementation.

Reads come from in-memory copies of the compacted topics; writes go to Kafka. Unit tests pass
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
from pipeline.deadletters import read_dead_letters, send_again
from pipeline.delivery.record import Delivery
from pipeline.endpoints import Endpoint, EndpointCache, EndpointWriter
from pipeline.health import HealthCache
from pipeline.history import DeliveryHistory, HistoryFollower
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
    history: DeliveryHistory
    delivery_sender: DeliverySender
    dead_letters: DeadLetterReader
    health: HealthReader


@asynccontextmanager
async def kafka_backends(
    settings: Settings, ready_seconds: float = 60.0
) -> AsyncIterator[Backends]:
    """The Kafka-backed backends, with both caches loaded before the API takes requests."""
    endpoints, accounts = EndpointCache(settings).start(), AccountCache(settings).start()
    health = HealthCache(settings).start()
    retention = settings.history_retention_days * 86_400
    history = DeliveryHistory(retention_seconds=retention)
    follower = HistoryFollower(settings, history, retention).start()
    try:
        await endpoints.wait_ready_async(ready_seconds)
        await accounts.wait_ready_async(ready_seconds)
        await health.wait_ready_async(ready_seconds)
        await asyncio.to_thread(follower.wait_ready, ready_seconds)
        yield Backends(
            endpoints=endpoints,
            endpoint_writer=EndpointWriter(settings),
            accounts=accounts,
            account_writer=AccountWriter(settings),
            history=history,
            delivery_sender=KafkaDeliverySender(settings),
            dead_letters=KafkaDeadLetters(settings),
            health=health,
        )
    finally:
        endpoints.stop()
        accounts.stop()
        health.stop()
        follower.stop()


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
