"""Versioned plain-SQL migrations: ``pipeline/db/migrations/NNNN_name.sql``, applied in order.

Each file runs in its own transaction together with its row in ``schema_migrations``, so a
migration is applied whole or not at all. A session-level advisory lock serializes every
process that migrates at once (several API processes starting together): the second waits,
then finds the work done.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

from pipeline.db.connection import connect, unavailable_as_error
from pipeline.settings import Settings

LOCK_KEY = 0x76_656C_6F75  # "velou": any constant of ours, the same in every process
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True, kw_only=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"


def available() -> list[Migration]:
    """The migrations shipped with this version, in order (package data)."""
    found: dict[int, Migration] = {}
    for entry in resources.files("pipeline.db").joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match is None:
            continue
        version = int(match.group(1))
        if version in found:
            raise RuntimeError(f"two migrations numbered {version:04d}: {entry.name}")
        found[version] = Migration(version=version, name=match.group(2), sql=entry.read_text())
    return [found[v] for v in sorted(found)]


def migrate(settings: Settings) -> list[Migration]:
    """Apply what the database lacks; return what was applied (empty: it was up to date)."""
    applied: list[Migration] = []
    with connect(settings, autocommit=True) as conn, unavailable_as_error("migrate"):
        conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            for migration in available():
                if migration.version in done:
                    continue
                with conn.transaction():
                    conn.execute(migration.sql.encode())  # no parameters: several statements
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                        (migration.version, migration.name),
                    )
                applied.append(migration)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
    return applied
