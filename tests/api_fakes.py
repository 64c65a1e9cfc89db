"""In-memory stand-ins for the API's backends, for fast unit tests of the API (tests only).

:class:`InMemoryControlPlane` keeps the real store's contract (versions, If-Match, only the
given fields changed, 404 for another account's endpoint) without PostgreSQL; what claims
database behaviour (concurrency, the outbox) is tested on a real server in tests/integration.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.accounts import Account, ApiKey
from pipeline.api.backends import Backends
from pipeline.controlplane import VersionedAccount, VersionedEndpoint
from pipeline.delivery.record import Delivery
from pipeline.endpoints import Endpoint
from pipeline.exceptions import StaleVersion
from pipeline.health import HealthIndex
from pipeline.history import DeliveryHistory


class InMemoryControlPlane:
    def __init__(self) -> None:
        self.accounts: dict[str, VersionedAccount] = {}
        self.endpoints: dict[str, VersionedEndpoint] = {}

    def for_account(self, account_id: str) -> tuple[Endpoint, ...]:
        """The account's endpoints by id, for tests to look at (synchronous)."""
        mine = (f.endpoint for f in self.endpoints.values() if f.endpoint.account_id == account_id)
        return tuple(sorted(mine, key=lambda e: e.id))

    async def account(self, account_id: str) -> VersionedAccount | None:
        return self.accounts.get(account_id)

    async def authenticate(self, api_key: str) -> Account | None:
        for found in self.accounts.values():
            if any(key.matches(api_key) for key in found.account.keys):
                return found.account
        return None

    async def create_account(self, account: Account) -> VersionedAccount:
        self.accounts[account.id] = VersionedAccount(account=account, version=1)
        return self.accounts[account.id]

    def _account_changed(self, account: Account) -> VersionedAccount:
        version = self.accounts[account.id].version + 1
        self.accounts[account.id] = VersionedAccount(account=account, version=version)
        return self.accounts[account.id]

    async def add_key(self, account_id: str) -> tuple[VersionedAccount, str] | None:
        found = self.accounts.get(account_id)
        if found is None:
            return None
        account, plain = found.account.with_new_key()
        return self._account_changed(account), plain

    async def revoke_key(self, account_id: str, prefix: str) -> ApiKey | None:
        found = self.accounts.get(account_id)
        if found is None or found.account.key(prefix) is None:
            return None
        return self._account_changed(found.account.with_key_revoked(prefix)).account.key(prefix)

    async def endpoint(self, endpoint_id: str) -> VersionedEndpoint | None:
        return self.endpoints.get(endpoint_id)

    async def endpoints_of(
        self, account_id: str | None, *, after: str | None = None, limit: int = 100
    ) -> list[VersionedEndpoint]:
        mine = sorted(
            (f for f in self.endpoints.values() if account_id in (None, f.endpoint.account_id)),
            key=lambda f: f.endpoint.id,
        )
        return [f for f in mine if after is None or f.endpoint.id > after][:limit]

    async def create_endpoint(self, endpoint: Endpoint) -> VersionedEndpoint:
        self.endpoints[endpoint.id] = VersionedEndpoint(endpoint=endpoint, version=1)
        return self.endpoints[endpoint.id]

    def _mine(self, endpoint_id: str, account_id: str, if_version: int | None) -> Endpoint | None:
        found = self.endpoints.get(endpoint_id)
        if found is None or found.endpoint.account_id != account_id:
            return None
        if if_version is not None and if_version != found.version:
            raise StaleVersion(f"endpoint {endpoint_id}", current=found.version)
        return found.endpoint

    async def update_endpoint(
        self,
        endpoint_id: str,
        account_id: str,
        changes: Mapping[str, Any],
        *,
        if_version: int | None = None,
    ) -> VersionedEndpoint | None:
        endpoint = self._mine(endpoint_id, account_id, if_version)
        if endpoint is None:
            return None
        version = self.endpoints[endpoint_id].version + 1
        changed = VersionedEndpoint(endpoint=endpoint.replace(**changes), version=version)
        self.endpoints[endpoint_id] = changed
        return changed

    async def rotate_secret(
        self, endpoint_id: str, account_id: str, grace_seconds: int
    ) -> VersionedEndpoint | None:
        endpoint = self._mine(endpoint_id, account_id, None)
        if endpoint is None:
            return None
        rotated = endpoint.rotate(grace_seconds)
        changes = {"secret": rotated.secret, "previous_secrets": rotated.previous_secrets}
        return await self.update_endpoint(endpoint_id, account_id, changes)

    async def delete_endpoint(
        self, endpoint_id: str, account_id: str, *, if_version: int | None = None
    ) -> bool:
        if self._mine(endpoint_id, account_id, if_version) is None:
            return False
        del self.endpoints[endpoint_id]
        return True


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


def in_memory_backends(control: InMemoryControlPlane | None = None) -> Backends:
    return Backends(
        control=control or InMemoryControlPlane(),
        history=DeliveryHistory(retention_seconds=30 * 86_400),
        delivery_sender=RecordingSender(),
        dead_letters=InMemoryDeadLetters(),
        health=HealthIndex(),
    )
