"""In-memory stand-ins for the API's backends, for fast unit tests of the API (tests only).

:class:`InMemoryControlPlane` keeps the real store's contract (versions, If-Match, only the
given fields changed, 404 for another account's endpoint) without PostgreSQL; what claims
database behaviour (concurrency, the outbox, the delivery log's SQL) is tested on a real
server in tests/integration.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Any

from pipeline.accounts import Account, ApiKey
from pipeline.api.backends import Backends
from pipeline.controlplane import VersionedAccount, VersionedEndpoint
from pipeline.delivery.record import Attempt, Delivery
from pipeline.deliverylog import DeliveryView, Page, Status
from pipeline.deliverylog.reads import decode_cursor, encode_cursor
from pipeline.endpoints import Endpoint
from pipeline.exceptions import StaleVersion
from pipeline.health import HealthIndex
from pipeline.portal import AuditEntry, PortalLink, Scope, hash_token, new_token
from pipeline.portal.model import new_link_id


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


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


class InMemoryDeliveryLog:
    """The delivery log reader over two lists, fed by ``add_delivery`` / ``add_attempt`` (as the
    sink would be): first sighting of a delivery id kept, attempts deduplicated by key."""

    def __init__(self) -> None:
        self._deliveries: dict[str, tuple[Delivery, int]] = {}
        self._attempts: dict[str, dict[tuple[int, int], Attempt]] = {}

    def add_delivery(self, delivery: Delivery, seen_at: int) -> None:
        self._deliveries.setdefault(delivery.delivery_id, (delivery, seen_at))

    def add_attempt(self, attempt: Attempt) -> None:
        self._attempts.setdefault(attempt.delivery_id, {})[(attempt.at, attempt.attempt)] = attempt

    def _view(self, delivery_id: str, *, full: bool = False) -> DeliveryView:
        d, seen_at = self._deliveries[delivery_id]
        attempts = tuple(a for _k, a in sorted(self._attempts.get(delivery_id, {}).items()))
        return DeliveryView(
            delivery_id=d.delivery_id,
            event_id=d.event_id,
            event_type=d.event_type,
            account_id=d.account_id,
            endpoint_id=d.endpoint_id,
            created_at=seen_at,
            body=d.body.decode(),
            event_time=d.event_time,
            attempt_count=len(attempts),
            last_attempt=attempts[-1] if attempts else None,
            attempts=attempts if full else (),
        )

    def _select(
        self,
        account_id: str,
        endpoint_id: str | None,
        event_type: str | None,
        status: Status | None,
        since: int | None,
        until: int | None,
    ) -> list[DeliveryView]:
        views = [self._view(i) for i in self._deliveries]
        return sorted(
            (
                v
                for v in views
                if v.account_id == account_id
                and endpoint_id in (None, v.endpoint_id)
                and event_type in (None, v.event_type)
                and status in (None, v.status)
                and (since is None or v.created_at >= since)
                and (until is None or v.created_at < until)
            ),
            key=lambda v: (v.created_at, v.delivery_id),
        )

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
    ) -> Page:
        views = self._select(account_id, endpoint_id, event_type, status, since, until)[::-1]
        if cursor:
            before = decode_cursor(cursor)
            views = [v for v in views if (v.created_at, v.delivery_id) < before]
        items = views[:limit]
        return Page(items, encode_cursor(items[-1]) if len(views) > limit else None)

    async def get(self, account_id: str, delivery_id: str) -> DeliveryView | None:
        if delivery_id not in self._deliveries:
            return None
        view = self._view(delivery_id, full=True)
        return view if view.account_id == account_id else None

    async def matching(
        self, account_id: str, *, endpoint_id: str | None, status: Status, since: int
    ) -> list[DeliveryView]:
        return self._select(account_id, endpoint_id, None, status, since, None)

    async def per_minute(
        self, account_id: str, *, endpoint_id: str | None, since: int
    ) -> dict[int, dict[str, int]]:
        buckets: dict[int, dict[str, int]] = {}
        for attempts in self._attempts.values():
            for a in attempts.values():
                mine = a.account_id == account_id and endpoint_id in (None, a.endpoint_id)
                if mine and a.at // 60_000 >= since // 60_000:  # the first minute whole
                    counts = buckets.setdefault(a.at // 60_000 * 60_000, {})
                    counts[a.outcome] = counts.get(a.outcome, 0) + 1
        return dict(sorted(buckets.items()))


class InMemoryPortal:
    """Portal links and the audit log in dicts, with the same rules as the SQL store."""

    def __init__(self) -> None:
        self.stored: dict[str, PortalLink] = {}
        self.hashes: dict[bytes, str] = {}
        self.entries: list[AuditEntry] = []

    async def create(
        self, account_id: str, *, scope: Scope, ttl_seconds: int, label: str, created_by: str
    ) -> tuple[PortalLink, str]:
        token, now = new_token(), _now_ms()
        link = PortalLink(
            id=new_link_id(),
            account_id=account_id,
            scope=scope,
            label=label,
            created_by=created_by,
            created_at=now,
            expires_at=now + ttl_seconds * 1000,
        )
        self.stored[link.id], self.hashes[hash_token(token)] = link, link.id
        detail = {"link_id": link.id, "scope": scope, "label": label, "expires_at": link.expires_at}
        await self.record(account_id, created_by, "portal_link.created", detail)
        return link, token

    async def authenticate(self, token: str) -> PortalLink | None:
        link = self.stored.get(self.hashes.get(hash_token(token), ""))
        if link is None or not link.active(_now_ms()):
            return None
        if link.last_used_at is None:
            await self.record(link.account_id, link.actor, "portal_link.opened", {})
        self.stored[link.id] = dataclasses.replace(link, last_used_at=_now_ms())
        return link

    async def links_of(self, account_id: str) -> list[PortalLink]:
        mine = [link for link in self.stored.values() if link.account_id == account_id]
        return sorted(mine, key=lambda link: (link.created_at, link.id), reverse=True)

    async def links(self, account_id: str, limit: int) -> list[PortalLink]:
        return (await self.links_of(account_id))[:limit]

    async def revoke(self, account_id: str, link_id: str, actor: str) -> PortalLink | None:
        link = self.stored.get(link_id)
        if link is None or link.account_id != account_id:
            return None
        link = dataclasses.replace(link, revoked_at=link.revoked_at or _now_ms())
        self.stored[link_id] = link
        await self.record(account_id, actor, "portal_link.revoked", {"link_id": link_id})
        return link

    async def revoke_all(self, account_id: str, actor: str) -> int:
        now = _now_ms()
        active = [link for link in await self.links_of(account_id) if link.active(now)]
        for link in active:
            self.stored[link.id] = dataclasses.replace(link, revoked_at=now)
        detail = {"link_ids": [link.id for link in active]}
        await self.record(account_id, actor, "portal_link.revoked_all", detail)
        return len(active)

    async def record(
        self, account_id: str, actor: str, action: str, detail: dict[str, Any]
    ) -> None:
        entry = AuditEntry(
            id=len(self.entries) + 1,
            account_id=account_id,
            at=_now_ms(),
            actor=actor,
            action=action,
            detail=detail,
        )
        self.entries.append(entry)

    async def audit(self, account_id: str, limit: int, before: int | None) -> list[AuditEntry]:
        mine = [
            e
            for e in reversed(self.entries)
            if e.account_id == account_id and (before is None or e.id < before)
        ]
        return mine[:limit]


def in_memory_backends(control: InMemoryControlPlane | None = None) -> Backends:
    return Backends(
        control=control or InMemoryControlPlane(),
        delivery_log=InMemoryDeliveryLog(),
        delivery_sender=RecordingSender(),
        health=HealthIndex(),
        portal=InMemoryPortal(),
    )
