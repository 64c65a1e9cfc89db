"""Portal links and the audit log in PostgreSQL (tables of migration 0005).

Every change to a link and its audit entry are written in one transaction. A token is looked up
by its SHA-256 (unique index); expiry and revocation are checked by the database's clock, so
API processes with skewed clocks agree on when a link stops working.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Protocol

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from pipeline.db import unavailable_as_error
from pipeline.portal.model import AuditEntry, PortalLink, Scope, hash_token, new_link_id, new_token

# The statements are whole literals (the column list is spelled out in each) so no SQL is
# built from strings at run time.
_CREATE = (
    "INSERT INTO portal_links (link_id, account_id, token_sha256, scope, label, created_by,"
    " expires_at) VALUES (%s, %s, %s, %s, %s, %s, now() + make_interval(secs => %s))"
    " RETURNING link_id, account_id, scope, label, created_by, created_at, expires_at,"
    " revoked_at, last_used_at"
)
_ACTIVE_LINK = (
    "SELECT link_id, account_id, scope, label, created_by, created_at, expires_at, revoked_at,"
    " last_used_at FROM portal_links"
    " WHERE token_sha256 = %s AND revoked_at IS NULL AND expires_at > now()"
)
_OF_ACCOUNT = (
    "SELECT link_id, account_id, scope, label, created_by, created_at, expires_at, revoked_at,"
    " last_used_at FROM portal_links"
    " WHERE account_id = %s ORDER BY created_at DESC, link_id DESC LIMIT %s"
)
_REVOKE = (
    "UPDATE portal_links SET revoked_at = coalesce(revoked_at, now())"
    " WHERE account_id = %s AND link_id = %s"
    " RETURNING link_id, account_id, scope, label, created_by, created_at, expires_at,"
    " revoked_at, last_used_at"
)
_TOUCH_EVERY = dt.timedelta(minutes=1)
"""``last_used_at`` is written at most this often a link (not on every dashboard request)."""


def _ms(value: dt.datetime) -> int:
    return int(value.timestamp() * 1000)


def _ms_or_none(value: dt.datetime | None) -> int | None:
    return None if value is None else _ms(value)


def _link(row: tuple[Any, ...]) -> PortalLink:
    return PortalLink(
        id=row[0],
        account_id=row[1],
        scope=row[2],
        label=row[3],
        created_by=row[4],
        created_at=_ms(row[5]),
        expires_at=_ms(row[6]),
        revoked_at=_ms_or_none(row[7]),
        last_used_at=_ms_or_none(row[8]),
    )


class PortalStore(Protocol):
    async def create(
        self, account_id: str, *, scope: Scope, ttl_seconds: int, label: str, created_by: str
    ) -> tuple[PortalLink, str]:
        """A new link and its token (shown once)."""
        ...

    async def authenticate(self, token: str) -> PortalLink | None:
        """The active link of this token, or None (unknown, expired or revoked)."""
        ...

    async def links(self, account_id: str, limit: int) -> list[PortalLink]: ...

    async def revoke(self, account_id: str, link_id: str, actor: str) -> PortalLink | None:
        """The link, revoked (revoking twice changes nothing); None when it is not the account's."""
        ...

    async def revoke_all(self, account_id: str, actor: str) -> int:
        """Revoke the account's active links; how many there were."""
        ...

    async def record(
        self, account_id: str, actor: str, action: str, detail: dict[str, Any]
    ) -> None: ...

    async def audit(self, account_id: str, limit: int, before: int | None) -> list[AuditEntry]:
        """The account's audit entries, newest first, older than entry ``before`` if given."""
        ...


_INSERT_AUDIT = "INSERT INTO audit_log (account_id, actor, action, detail) VALUES (%s, %s, %s, %s)"


class PortalLinks:
    """The PostgreSQL store the API uses (on the API's pool; the pool commits each block)."""

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self._pool = pool

    async def create(
        self, account_id: str, *, scope: Scope, ttl_seconds: int, label: str, created_by: str
    ) -> tuple[PortalLink, str]:
        token = new_token()
        with unavailable_as_error("portal links"):
            async with self._pool.connection() as conn, conn.transaction():
                cur = await conn.execute(
                    _CREATE,
                    (
                        new_link_id(),
                        account_id,
                        hash_token(token),
                        scope,
                        label,
                        created_by,
                        ttl_seconds,
                    ),
                )
                row = await cur.fetchone()
                assert row is not None
                link = _link(row)
                detail = {
                    "link_id": link.id,
                    "scope": scope,
                    "label": label,
                    "expires_at": link.expires_at,
                }
                await conn.execute(
                    _INSERT_AUDIT, (account_id, created_by, "portal_link.created", Jsonb(detail))
                )
        return link, token

    async def authenticate(self, token: str) -> PortalLink | None:
        with unavailable_as_error("portal links"):
            async with self._pool.connection() as conn:
                cur = await conn.execute(
                    _ACTIVE_LINK,
                    (hash_token(token),),
                )
                row = await cur.fetchone()
                if row is None:
                    return None
                link = _link(row)
                if row[8] is None:  # first use: the audit log says when the link was opened
                    async with conn.transaction():
                        cur = await conn.execute(
                            "UPDATE portal_links SET last_used_at = now()"
                            " WHERE link_id = %s AND last_used_at IS NULL RETURNING link_id",
                            (link.id,),
                        )
                        if await cur.fetchone() is not None:
                            await conn.execute(
                                _INSERT_AUDIT,
                                (link.account_id, link.actor, "portal_link.opened", Jsonb({})),
                            )
                else:
                    await conn.execute(
                        "UPDATE portal_links SET last_used_at = now()"
                        " WHERE link_id = %s AND last_used_at < now() - %s",
                        (link.id, _TOUCH_EVERY),
                    )
        return link

    async def links(self, account_id: str, limit: int) -> list[PortalLink]:
        with unavailable_as_error("portal links"):
            async with self._pool.connection() as conn:
                cur = await conn.execute(
                    _OF_ACCOUNT,
                    (account_id, limit),
                )
                return [_link(row) for row in await cur.fetchall()]

    async def revoke(self, account_id: str, link_id: str, actor: str) -> PortalLink | None:
        with unavailable_as_error("portal links"):
            async with self._pool.connection() as conn, conn.transaction():
                cur = await conn.execute(
                    _REVOKE,
                    (account_id, link_id),
                )
                row = await cur.fetchone()
                if row is None:
                    return None
                await conn.execute(
                    _INSERT_AUDIT,
                    (account_id, actor, "portal_link.revoked", Jsonb({"link_id": link_id})),
                )
                return _link(row)

    async def revoke_all(self, account_id: str, actor: str) -> int:
        with unavailable_as_error("portal links"):
            async with self._pool.connection() as conn, conn.transaction():
                cur = await conn.execute(
                    "UPDATE portal_links SET revoked_at = now() WHERE account_id = %s"
                    " AND revoked_at IS NULL AND expires_at > now() RETURNING link_id",
                    (account_id,),
                )
                ids = [row[0] for row in await cur.fetchall()]
                detail = {"link_ids": ids}
                await conn.execute(
                    _INSERT_AUDIT, (account_id, actor, "portal_link.revoked_all", Jsonb(detail))
                )
                return len(ids)

    async def record(
        self, account_id: str, actor: str, action: str, detail: dict[str, Any]
    ) -> None:
        with unavailable_as_error("audit log"):
            async with self._pool.connection() as conn:
                await conn.execute(_INSERT_AUDIT, (account_id, actor, action, Jsonb(detail)))

    async def audit(self, account_id: str, limit: int, before: int | None) -> list[AuditEntry]:
        with unavailable_as_error("audit log"):
            async with self._pool.connection() as conn:
                cur = await conn.execute(
                    "SELECT entry_id, account_id, at, actor, action, detail FROM audit_log"
                    " WHERE account_id = %s AND (%s::bigint IS NULL OR entry_id < %s)"
                    " ORDER BY entry_id DESC LIMIT %s",
                    (account_id, before, before, limit),
                )
                rows = await cur.fetchall()
        return [
            AuditEntry(id=r[0], account_id=r[1], at=_ms(r[2]), actor=r[3], action=r[4], detail=r[5])
            for r in rows
        ]
