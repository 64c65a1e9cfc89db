"""The PostgreSQL plumbing on a real server: migrations applied once, in order, concurrently safe;
an unreachable server is DatabaseUnavailable."""

from __future__ import annotations

import threading
from collections.abc import Callable

import psycopg
import pytest

from pipeline.db import Migration, available, connect, migrate, schema
from pipeline.exceptions import DatabaseUnavailable
from pipeline.settings import Settings

pytestmark = pytest.mark.postgres


def test_migrations_apply_once_in_order(
    settings_factory: Callable[..., Settings], fresh_database_url: str
) -> None:
    settings = settings_factory(database_url=fresh_database_url)
    shipped = available()
    assert [m.version for m in shipped] == sorted(m.version for m in shipped)
    assert shipped[0].label == "0001_delivery_log"

    assert [m.label for m in migrate(settings)] == [m.label for m in shipped]
    assert migrate(settings) == []
    with connect(settings) as conn:
        rows = conn.execute("SELECT version, name FROM schema_migrations ORDER BY 1").fetchall()
    assert rows == [(m.version, m.name) for m in shipped]
    assert {"deliveries", "attempts"} <= _partitioned(settings)


def _partitioned(settings: Settings) -> set[str]:
    with connect(settings) as conn:
        rows = conn.execute(
            "SELECT c.relname FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid"
        ).fetchall()
    return {r[0] for r in rows}


def test_concurrent_migrations_apply_each_file_once(
    settings_factory: Callable[..., Settings], fresh_database_url: str
) -> None:
    settings = settings_factory(database_url=fresh_database_url)
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append([m.label for m in migrate(settings)])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sorted(len(r) for r in results) == [0, 0, 0, len(available())]
    assert {"deliveries", "attempts"} <= _partitioned(settings)


def test_a_failing_migration_leaves_nothing_behind(
    settings_factory: Callable[..., Settings],
    fresh_database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = settings_factory(database_url=fresh_database_url)
    broken = Migration(version=9999, name="broken", sql="CREATE TABLE half_done (x int); SELEC 1;")
    monkeypatch.setattr(schema, "available", lambda: [*available(), broken])
    with pytest.raises(psycopg.errors.SyntaxError):
        migrate(settings)
    with connect(settings) as conn:
        assert conn.execute("SELECT to_regclass('half_done')").fetchone() == (None,)
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations")]
    assert versions == [m.version for m in available()]  # the good ones stay applied
    monkeypatch.setattr(schema, "available", available)
    assert migrate(settings) == []


def test_an_unreachable_server_is_database_unavailable(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory(
        database_url="postgresql://velourcity:velourcity@127.0.0.1:1/velourcity"
    )
    with pytest.raises(DatabaseUnavailable, match="PostgreSQL is unavailable"):
        migrate(settings)
