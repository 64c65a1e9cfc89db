"""In-memory stand-ins for the Kafka backends, for fast unit tests of the API (tests only).

``visible_after`` delays when a write shows up in reads (as a cache following a topic does), so
tests can check that the API waits for its own writes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from pipeline.accounts import Account, AccountIndex
from pipeline.api.backends import Backends
from pipeline.delivery.record import Delivery
from pipeline.endpoints import Endpoint
from pipeline.health import HealthIndex
from pipeline.history import DeliveryHistory


class _Delayed:
    def __init__(self, visible_after: float) -> None:
        self.visible_after = visible_after
        self.writes = 0

    def _apply_later(self, apply: Callable[[], object]) -> None:
        self.writes += 1
        if self.visible_after <= 0:
            apply()
            return
        timer = threading.Timer(self.visible_after, apply)
        timer.daemon = True
        timer.start()


class InMemoryEndpoints(_Delayed):
    """Both the endpoint reader and writer."""

    def __init__(self, visible_after: float = 0.0) -> None:
        super().__init__(visible_after)
        self._by_id: dict[str, Endpoint] = {}

    def get(self, endpoint_id: str) -> Endpoint | None:
        return self._by_id.get(endpoint_id)

    def for_account(self, account_id: str) -> tuple[Endpoint, ...]:
        return tuple(e for e in self._by_id.values() if e.account_id == account_id)

    def put(self, endpoint: Endpoint) -> Endpoint:
        self._apply_later(lambda: self._by_id.__setitem__(endpoint.id, endpoint))
        return endpoint

    def delete(self, endpoint_id: str) -> None:
        self._apply_later(lambda: self._by_id.pop(endpoint_id, None))


class InMemoryAccounts(AccountIndex, _Delayed):
    """Both the account reader (the real index, fed directly) and writer."""

    def __init__(self, visible_after: float = 0.0) -> None:
        AccountIndex.__init__(self)
        _Delayed.__init__(self, visible_after)

    def put(self, account: Account) -> Account:
        self._apply_later(lambda: self.apply(account.id, account.to_json()))
        return account


class RecordingSender:
    """Keeps what the API sent again, for tests to look at."""

    def __init__(self) -> None:
        self.sent: list[Delivery] = []

    def send(self, deliveries: list[Delivery]) -> int:
        self.sent.extend(deliveries)
        return len(deliveries)


class InMemoryDeadLetters:
    def __init__(self) -> None:
        self.letters: list[tuple[Delivery, int]] = []

    def read(
        self, account_id: str, endpoint_id: str | None, since_ms: int
    ) -> list[tuple[Delivery, int]]:
        return [
            (d, at)
            for d, at in self.letters
            if d.account_id == account_id
            and endpoint_id in (None, d.endpoint_id)
            and at >= since_ms
        ]


def in_memory_backends(visible_after: float = 0.0) -> Backends:
    endpoints, accounts = InMemoryEndpoints(visible_after), InMemoryAccounts(visible_after)
    return Backends(
        endpoints=endpoints,
        endpoint_writer=endpoints,
        accounts=accounts,
        account_writer=accounts,
        history=DeliveryHistory(retention_seconds=30 * 86_400),
        delivery_sender=RecordingSender(),
        dead_letters=InMemoryDeadLetters(),
        health=HealthIndex(),
    )
