"""The delivery log's day partitions: created ahead of the rows, dropped whole past retention.

A partition holds one UTC day, ``deliveries_pYYYYMMDD`` / ``attempts_pYYYYMMDD``. Dropping one
is instant and leaves no dead rows (no ``DELETE``, no vacuum); rows older than the retention
are never written (the sink skips them), so a dropped day never comes back.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import psycopg
from psycopg import sql

TABLES = ("deliveries", "attempts")
AHEAD_DAYS = 2
"""Partitions created past today, so a sink that starts at 23:59 has tomorrow's ready."""
_PARTITION = re.compile(r"^(deliveries|attempts)_p(\d{8})$")
UTC = dt.UTC


def day_of(ms: int) -> dt.date:
    return dt.datetime.fromtimestamp(ms / 1000, UTC).date()


def day_start(ms: int) -> dt.datetime:
    """Midnight UTC of the day of ``ms``."""
    return dt.datetime.combine(day_of(ms), dt.time(), UTC)


def _name(table: str, day: dt.date) -> str:
    return f"{table}_p{day:%Y%m%d}"


def existing(conn: psycopg.Connection[Any]) -> dict[str, set[dt.date]]:
    """The day partitions of each table."""
    found: dict[str, set[dt.date]] = {table: set() for table in TABLES}
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = ANY(%s)",
        (list(TABLES),),
    ).fetchall()
    for (name,) in rows:
        if match := _PARTITION.match(name):
            found[match.group(1)].add(dt.datetime.strptime(match.group(2), "%Y%m%d").date())
    return found


def create(conn: psycopg.Connection[Any], days: set[dt.date]) -> None:
    """Create the partitions of these days that do not exist yet (both tables)."""
    for day in sorted(days):
        start = dt.datetime.combine(day, dt.time(), UTC)
        end = start + dt.timedelta(days=1)
        for table in TABLES:
            conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})"
                ).format(
                    sql.Identifier(_name(table, day)),
                    sql.Identifier(table),
                    sql.Literal(start),
                    sql.Literal(end),
                )
            )


def upcoming(now_ms: int) -> set[dt.date]:
    """Today and the next :data:`AHEAD_DAYS` days (UTC)."""
    today = day_of(now_ms)
    return {today + dt.timedelta(days=n) for n in range(AHEAD_DAYS + 1)}


def cutoff_ms(now_ms: int, retention_days: float) -> int:
    """Rows older than this are past retention."""
    return now_ms - int(retention_days * 86_400_000)


def drop_expired(conn: psycopg.Connection[Any], now_ms: int, retention_days: float) -> list[str]:
    """Drop every partition whose whole day is older than the retention; return their names."""
    cutoff = day_of(cutoff_ms(now_ms, retention_days))
    dropped: list[str] = []
    for table, days in existing(conn).items():
        for day in sorted(days):
            if day < cutoff:  # the day ends at or before the cutoff's day starts
                name = _name(table, day)
                conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))
                dropped.append(name)
    return dropped
