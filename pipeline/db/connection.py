"""The one place that builds PostgreSQL connections (psycopg 3) and translates its errors.

Every connection, sync or async, pooled or not, comes from here with the settings' URL and
timeout; psycopg's "cannot reach / lost the server" errors leave it as
:class:`~pipeline.exceptions.DatabaseUnavailable`, chained to the original.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import psycopg.errors
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from pipeline.exceptions import DatabaseUnavailable
from pipeline.settings import Settings

_UNAVAILABLE = (
    psycopg.OperationalError,  # refused, reset, admin shutdown, ...
    psycopg.InterfaceError,  # a connection already closed
    PoolTimeout,  # no connection within database_timeout
    psycopg.errors.UndefinedTable,  # not migrated yet
)


@contextmanager
def unavailable_as_error(what: str) -> Iterator[None]:
    """Turn psycopg's connection-level failures inside the block into DatabaseUnavailable."""
    try:
        yield
    except psycopg.errors.UndefinedTable as exc:
        message = f"{what}: a table is missing (run `velourcity db migrate`): {exc}"
        raise DatabaseUnavailable(message) from exc
    except _UNAVAILABLE as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatabaseUnavailable(f"{what}: PostgreSQL is unavailable ({first_line})") from exc


def _kwargs(settings: Settings) -> dict[str, Any]:
    timeout = max(1, round(settings.database_timeout))  # libpq takes whole seconds
    return {"connect_timeout": timeout, "application_name": "velourcity"}


def connect(settings: Settings, *, autocommit: bool = False) -> psycopg.Connection[Any]:
    """A plain (sync) connection; raises DatabaseUnavailable when the server cannot be reached."""
    with unavailable_as_error("connect"):
        return psycopg.connect(settings.database_url, autocommit=autocommit, **_kwargs(settings))


def async_pool(settings: Settings) -> AsyncConnectionPool[Any]:
    """A pool for the API (not open yet: ``await pool.open()``). A connection is checked before
    it is handed out, so one broken by a server restart is replaced, not used."""
    return AsyncConnectionPool(
        settings.database_url,
        kwargs=_kwargs(settings),
        min_size=1,
        max_size=settings.database_pool_size,
        timeout=settings.database_timeout,
        check=AsyncConnectionPool.check_connection,
        open=False,
        name="velourcity-api",
    )
