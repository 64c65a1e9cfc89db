"""The control plane in PostgreSQL: accounts, API keys and endpoints, each change one transaction.

Every change writes its rows and, in the same transaction, an outbox row holding the record
exactly as the compacted topic holds it (``Endpoint.to_json()``, ``Account.to_json()``, or a
tombstone); :mod:`pipeline.controlplane.relay` produces it. A change is therefore in Kafka if and
only if it was committed here, whichever process dies when.

Concurrency: a PATCH is ``UPDATE ... SET <only its fields>, version = version + 1``, so two
PATCHes of different fields both survive; given ``if_version`` (the client's ``If-Match``) it
applies only to that version, else :class:`~pipeline.exceptions.StaleVersion`. A key is a row of
its own (one INSERT), a revocation an UPDATE. Changes of one record take its row lock, so their
outbox rows are numbered in commit order and the relay produces one key's versions in order.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
import psycopg.errors
from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from pipeline.accounts.model import Account, ApiKey, key_prefix
from pipeline.db import unavailable_as_error
from pipeline.endpoints.model import Endpoint
from pipeline.exceptions import Conflict, InvalidInput, StaleVersion
from pipeline.topics import ACCOUNTS, ENDPOINTS

NOTIFY_CHANNEL = "velourcity_outbox"
"""Every outbox insert notifies it (delivered at commit): the relay wakes at once."""

_ENDPOINT_COLUMNS = (
    "id", "account_id", "url", "event_types", "secret", "previous_secrets", "enabled",
    "disabled_reason", "description", "rate_limit", "ordered", "filter", "headers", "listen",
    "created_at", "updated_at",
)  # fmt: skip
"""Endpoint's fields, one column each (and ``version``)."""
SELECT_ENDPOINT = sql.SQL("SELECT {}, version FROM endpoints").format(
    sql.SQL(", ").join(map(sql.Identifier, _ENDPOINT_COLUMNS))
)
"""Add a WHERE; read the rows with a dict_row cursor into :func:`endpoint_from_row`."""


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True, kw_only=True)
class VersionedEndpoint:
    endpoint: Endpoint
    version: int
    """+ 1 with every committed change: the ETag."""


@dataclass(frozen=True, slots=True, kw_only=True)
class VersionedAccount:
    account: Account
    version: int


def endpoint_params(endpoint: Endpoint) -> dict[str, Any]:
    """An endpoint as column values."""
    return {
        "id": endpoint.id,
        "account_id": endpoint.account_id,
        "url": endpoint.url,
        "event_types": list(endpoint.event_types) if endpoint.event_types is not None else None,
        "secret": endpoint.secret,
        "previous_secrets": Jsonb([list(p) for p in endpoint.previous_secrets]),
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
        "description": endpoint.description,
        "rate_limit": endpoint.rate_limit,
        "ordered": endpoint.ordered,
        "filter": endpoint.filter,
        "headers": Jsonb([list(h) for h in endpoint.headers]),
        "listen": endpoint.listen,
        "created_at": endpoint.created_at,
        "updated_at": endpoint.updated_at,
    }


def _column_value(field: str, value: Any) -> Any:
    if field == "event_types":
        return list(value) if value is not None else None
    if field in ("previous_secrets", "headers"):
        return Jsonb([list(pair) for pair in value or ()])
    return value


def endpoint_from_row(row: Mapping[str, Any]) -> VersionedEndpoint:
    fields = {name: row[name] for name in _ENDPOINT_COLUMNS}
    types = fields["event_types"]
    fields["event_types"] = tuple(types) if types is not None else None
    fields["previous_secrets"] = tuple((str(s), int(e)) for s, e in fields["previous_secrets"])
    fields["headers"] = tuple((str(n), str(v)) for n, v in fields["headers"])
    return VersionedEndpoint(endpoint=Endpoint(**fields), version=row["version"])


async def _outbox(conn: AsyncConnection[Any], topic: str, key: str, value: bytes | None) -> None:
    await conn.execute(
        "INSERT INTO outbox (topic, key, value) VALUES (%s, %s, %s)", (topic, key, value)
    )
    await conn.execute(sql.SQL("NOTIFY {}").format(sql.Identifier(NOTIFY_CHANNEL)))


class ControlPlane:
    """The API's store for accounts, keys and endpoints (async, over a psycopg pool). Every
    method raises DatabaseUnavailable when PostgreSQL cannot be reached."""

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self._pool = pool

    @asynccontextmanager
    async def _transaction(self, what: str) -> AsyncIterator[AsyncConnection[Any]]:
        with unavailable_as_error(what), _no_nul():
            async with self._pool.connection() as conn, conn.transaction():
                yield conn

    # Accounts and keys ----------------------------------------------------------------

    async def account(self, account_id: str) -> VersionedAccount | None:
        async with self._transaction("read an account") as conn:
            return await _account(conn, account_id)

    async def authenticate(self, api_key: str) -> Account | None:
        """The account owning this active key, or ``None`` (the key's prefix finds the rows;
        their hashes are compared in constant time)."""
        async with self._transaction("check an API key") as conn:
            cursor = await conn.execute(
                "SELECT account_id, prefix, sha256, created_at, revoked_at FROM api_keys"
                " WHERE prefix = %s AND revoked_at IS NULL",
                (key_prefix(api_key),),
            )
            for account_id, *key in await cursor.fetchall():
                if ApiKey(prefix=key[0], sha256=key[1], created_at=key[2]).matches(api_key):
                    found = await _account(conn, account_id)
                    return found.account if found is not None else None
        return None

    async def create_account(self, account: Account) -> VersionedAccount:
        async with self._transaction("create an account") as conn:
            await conn.execute(
                "INSERT INTO accounts (id, name, created_at) VALUES (%s, %s, %s)",
                (account.id, account.name, account.created_at),
            )
            for key in account.keys:
                await _insert_key(conn, account.id, key)
            await _outbox(conn, ACCOUNTS, account.id, account.to_json())
        return VersionedAccount(account=account, version=1)

    async def add_key(self, account_id: str) -> tuple[VersionedAccount, str] | None:
        """A new key for the account (``None``: no such account), and that key in clear."""
        async with self._transaction("add an API key") as conn:
            current = await _account(conn, account_id, lock=True)
            if current is None:
                return None
            account, plain = current.account.with_new_key()
            await _insert_key(conn, account_id, account.keys[-1])
            return await _changed_account(conn, account_id), plain

    async def revoke_key(self, account_id: str, prefix: str) -> ApiKey | None:
        """Revoke (once: revoking again changes nothing); ``None``: no such key there."""
        async with self._transaction("revoke an API key") as conn:
            if await _account(conn, account_id, lock=True) is None:
                return None
            cursor = await conn.execute(
                "UPDATE api_keys SET revoked_at = coalesce(revoked_at, %s)"
                " WHERE account_id = %s AND prefix = %s RETURNING prefix",
                (_now_ms(), account_id, prefix),
            )
            if await cursor.fetchone() is None:
                return None
            changed = await _changed_account(conn, account_id)
            return changed.account.key(prefix)

    # Endpoints --------------------------------------------------------------------------

    async def endpoint(self, endpoint_id: str) -> VersionedEndpoint | None:
        async with self._transaction("read an endpoint") as conn:
            cursor = conn.cursor(row_factory=dict_row)
            await cursor.execute(SELECT_ENDPOINT + sql.SQL(" WHERE id = %s"), (endpoint_id,))
            row = await cursor.fetchone()
            return endpoint_from_row(row) if row is not None else None

    async def endpoints_of(
        self, account_id: str | None, *, after: str | None = None, limit: int = 100
    ) -> list[VersionedEndpoint]:
        """The account's endpoints (every account's: ``None``) by id (= creation order), those
        after ``after``."""
        async with self._transaction("list endpoints") as conn:
            cursor = conn.cursor(row_factory=dict_row)
            where = " WHERE (%s::text IS NULL OR account_id = %s) AND id > %s ORDER BY id LIMIT %s"
            await cursor.execute(
                SELECT_ENDPOINT + sql.SQL(where),
                (account_id, account_id, after or "", limit),
            )
            return [endpoint_from_row(row) for row in await cursor.fetchall()]

    async def create_endpoint(self, endpoint: Endpoint) -> VersionedEndpoint:
        params = endpoint_params(endpoint)
        insert = sql.SQL("INSERT INTO endpoints ({}) VALUES ({})").format(
            sql.SQL(", ").join(map(sql.Identifier, params)),
            sql.SQL(", ").join(map(sql.Placeholder, params)),
        )
        try:
            async with self._transaction("create an endpoint") as conn:
                await conn.execute(insert, params)
                await _outbox(conn, ENDPOINTS, endpoint.id, endpoint.to_json())
        except psycopg.errors.UniqueViolation as exc:
            raise Conflict(f"endpoint {endpoint.id} exists already; nothing written") from exc
        return VersionedEndpoint(endpoint=endpoint, version=1)

    async def update_endpoint(
        self,
        endpoint_id: str,
        account_id: str,
        changes: Mapping[str, Any],
        *,
        if_version: int | None = None,
    ) -> VersionedEndpoint | None:
        """Set only ``changes`` (Endpoint field names); ``None``: no such endpoint of the
        account. With ``if_version``, StaleVersion unless that is the current version."""
        async with self._transaction("change an endpoint") as conn:
            return await _update(conn, endpoint_id, account_id, changes, if_version)

    async def rotate_secret(
        self, endpoint_id: str, account_id: str, grace_seconds: int
    ) -> VersionedEndpoint | None:
        """A new secret; the current one (as committed, under the row lock) signs beside it
        for ``grace_seconds``."""
        async with self._transaction("rotate a secret") as conn:
            cursor = conn.cursor(row_factory=dict_row)
            await cursor.execute(
                SELECT_ENDPOINT + sql.SQL(" WHERE id = %s AND account_id = %s FOR UPDATE"),
                (endpoint_id, account_id),
            )
            row = await cursor.fetchone()
            if row is None:
                return None
            rotated = endpoint_from_row(row).endpoint.rotate(grace_seconds)
            changes = {"secret": rotated.secret, "previous_secrets": rotated.previous_secrets}
            return await _update(conn, endpoint_id, account_id, changes, None)

    async def delete_endpoint(
        self, endpoint_id: str, account_id: str, *, if_version: int | None = None
    ) -> bool:
        """Delete (a tombstone follows on the topic); False: no such endpoint of the account."""
        async with self._transaction("delete an endpoint") as conn:
            cursor = await conn.execute(
                "DELETE FROM endpoints WHERE id = %s AND account_id = %s"
                " AND (%s::integer IS NULL OR version = %s) RETURNING id",
                (endpoint_id, account_id, if_version, if_version),
            )
            if await cursor.fetchone() is None:
                await _raise_if_stale(conn, endpoint_id, account_id, if_version)
                return False
            await _outbox(conn, ENDPOINTS, endpoint_id, None)
            return True


@contextmanager
def _no_nul() -> Iterator[None]:
    """PostgreSQL text cannot hold NUL: such input (an id in a path, a description) is refused
    as input, not failed as a bug (Kafka took it before; nothing is written)."""
    try:
        yield
    except psycopg.DataError as exc:
        if "NUL" not in str(exc):
            raise
        raise InvalidInput("text may not hold NUL (\\u0000) characters") from exc


async def _update(
    conn: AsyncConnection[Any],
    endpoint_id: str,
    account_id: str,
    changes: Mapping[str, Any],
    if_version: int | None,
) -> VersionedEndpoint | None:
    unknown = set(changes) - set(_ENDPOINT_COLUMNS) | set(changes) & {"id", "account_id"}
    if unknown:
        raise ValueError(f"not changeable: {sorted(unknown)}")
    values = {field: _column_value(field, value) for field, value in changes.items()}
    values["updated_at"] = _now_ms()
    query = sql.SQL(
        "UPDATE endpoints SET {}, version = version + 1 WHERE id = {} AND account_id = {}"
    ).format(
        sql.SQL(", ").join(
            sql.SQL("{} = {}").format(sql.Identifier(f), sql.Placeholder(f)) for f in values
        ),
        sql.Placeholder("_id"),
        sql.Placeholder("_account"),
    )
    if if_version is not None:
        query += sql.SQL(" AND version = {}").format(sql.Placeholder("_version"))
    query += sql.SQL(" RETURNING {}, version").format(
        sql.SQL(", ").join(map(sql.Identifier, _ENDPOINT_COLUMNS))
    )
    params = values | {"_id": endpoint_id, "_account": account_id, "_version": if_version}
    cursor = conn.cursor(row_factory=dict_row)
    await cursor.execute(query, params)
    row = await cursor.fetchone()
    if row is None:
        await _raise_if_stale(conn, endpoint_id, account_id, if_version)
        return None
    changed = endpoint_from_row(row)
    await _outbox(conn, ENDPOINTS, endpoint_id, changed.endpoint.to_json())
    return changed


async def _raise_if_stale(
    conn: AsyncConnection[Any], endpoint_id: str, account_id: str, if_version: int | None
) -> None:
    """After a conditional write matched no row: StaleVersion if the endpoint is there."""
    if if_version is None:
        return
    cursor = await conn.execute(
        "SELECT version FROM endpoints WHERE id = %s AND account_id = %s",
        (endpoint_id, account_id),
    )
    row = await cursor.fetchone()
    if row is not None:
        raise StaleVersion(f"endpoint {endpoint_id} is at version {row[0]}", current=row[0])


async def _insert_key(conn: AsyncConnection[Any], account_id: str, key: ApiKey) -> None:
    await conn.execute(
        "INSERT INTO api_keys (prefix, account_id, sha256, created_at, revoked_at)"
        " VALUES (%s, %s, %s, %s, %s)",
        (key.prefix, account_id, key.sha256, key.created_at, key.revoked_at),
    )


async def _account(
    conn: AsyncConnection[Any], account_id: str, *, lock: bool = False
) -> VersionedAccount | None:
    """The account with its keys; ``lock`` takes its row lock until the transaction ends (so
    key changes of one account commit one after the other, each seeing the one before)."""
    query = "SELECT name, created_at, version FROM accounts WHERE id = %s"
    cursor = await conn.execute(query + " FOR UPDATE" if lock else query, (account_id,))
    row = await cursor.fetchone()
    if row is None:
        return None
    cursor = await conn.execute(
        "SELECT prefix, sha256, created_at, revoked_at FROM api_keys"
        " WHERE account_id = %s ORDER BY created_at, prefix",
        (account_id,),
    )
    keys = tuple(
        ApiKey(prefix=p, sha256=h, created_at=c, revoked_at=r)
        for p, h, c, r in await cursor.fetchall()
    )
    name, created_at, version = row
    account = Account(id=account_id, name=name, created_at=created_at, keys=keys)
    return VersionedAccount(account=account, version=version)


async def _changed_account(conn: AsyncConnection[Any], account_id: str) -> VersionedAccount:
    """After a key change (row lock held): bump the version, queue the whole account record."""
    await conn.execute("UPDATE accounts SET version = version + 1 WHERE id = %s", (account_id,))
    changed = await _account(conn, account_id)
    assert changed is not None  # locked by this transaction
    await _outbox(conn, ACCOUNTS, account_id, changed.account.to_json())
    return changed
