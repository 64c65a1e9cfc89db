#!/usr/bin/env python3
"""What the number of day partitions costs the log sink's writes (no Kafka: the writer alone).

Writes 50,000 deliveries and 50,000 attempts of today into a fresh database with only today's
partitions, then into one holding DAYS older days of PER_DAY deliveries (and attempts) each,
then into a fresh one again (the load of a shared machine moves between runs).

    .venv/bin/python scripts/log_sink_partitions.py [DAYS [PER_DAY]]     # 30 20000
"""

from __future__ import annotations

import sys
import time
import uuid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

from pipeline.db import connect, migrate
from pipeline.delivery.record import Attempt, Delivery
from pipeline.deliverylog.rows import rows_of
from pipeline.deliverylog.writer import LogWriter
from pipeline.settings import load_settings

DAY = 86_400_000


def records(start: int, count: int, at: int) -> list[tuple[str, bytes | None, int]]:
    out: list[tuple[str, bytes | None, int]] = []
    for n in range(start, start + count):
        d = Delivery(
            delivery_id=f"dlv_{n}",
            event_id=f"evt_{n}",
            event_type="order.created",
            account_id=f"acc_{n % 50}",
            endpoint_id=f"ep_{n % 500}",
            body=b'{"type":"order.created"}',
            event_time=at,
        )
        a = Attempt(
            delivery_id=d.delivery_id,
            endpoint_id=d.endpoint_id,
            account_id=d.account_id,
            event_id=d.event_id,
            event_type=d.event_type,
            attempt=1,
            at=at + 5,
            status=200,
            error=None,
            latency_ms=1.0,
            response_excerpt="ok",
            outcome="delivered",
            event_time=d.event_time,
        )
        out += [("d", d.to_bytes(), at), ("a", a.to_bytes(), at + 5)]
    return out


def run(days: int, per_day: int) -> None:
    base = load_settings()
    name = f"partitions_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base.database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    settings = load_settings(
        database_url=urlunsplit(urlsplit(base.database_url)._replace(path=f"/{name}"))
    )
    try:
        migrate(settings)
        now, n, writer = int(time.time() * 1000), 0, LogWriter()

        def write(conn: psycopg.Connection[Any], count: int, at: int) -> None:
            nonlocal n
            batch = records(n, count, at)
            rows = rows_of(batch, deliveries_topic="d", attempts_topic="a", cutoff_ms=0)
            writer.write(conn, rows)
            n += count

        with connect(settings, autocommit=True) as conn:
            writer.maintain(conn, now, retention_days=days + 10)
            for day in range(days, 0, -1):
                for _ in range(0, per_day, 10_000):
                    write(conn, 10_000, now - day * DAY)
            conn.execute("ANALYZE")
            started = time.perf_counter()
            for _ in range(10):
                write(conn, 5000, now)
            took = time.perf_counter() - started
            row = conn.execute(
                "SELECT count(*) FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent"
                " WHERE p.relname = 'deliveries'"
            ).fetchone()
        print(
            f"{row[0] if row else '?'} day partitions, {days * per_day} older deliveries: "
            f"50,000 deliveries + 50,000 attempts in {took:.1f} s ({50_000 / took:,.0f} attempts/s)"
        )
    finally:
        with psycopg.connect(base.database_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')  # its sessions are closed


if __name__ == "__main__":
    days = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    per_day = int(sys.argv[2]) if len(sys.argv) > 2 else 20_000
    run(0, 0)
    run(days, per_day)
    run(0, 0)
