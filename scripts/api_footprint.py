#!/usr/bin/env python3
"""An API process's start-up time and RSS with an empty delivery log and with a full one.

Starts ``velourcity api --no-sink`` on a fresh database (and topic prefix), creates an account,
stops it; writes ROWS deliveries (one attempt each) of that account straight into the delivery
log; then starts the API again. Each time it reports the seconds from the process start to the
first answered ``GET /v1/deliveries``, the RSS after 100 such requests, and their p50/p99.

    VELOURCITY_KAFKA_BOOTSTRAP=127.0.0.1:9092 .venv/bin/python scripts/api_footprint.py [ROWS]
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg

from pipeline.db import connect, migrate
from pipeline.delivery.record import Attempt, Delivery
from pipeline.deliverylog.rows import rows_of
from pipeline.deliverylog.writer import LogWriter
from pipeline.settings import Settings, load_settings
from pipeline.topics import create_topics

ROOT = Path(__file__).resolve().parents[1]
ADMIN = "footprint-admin"


def main() -> None:
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    base = load_settings()
    name = f"footprint_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base.database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    url = urlunsplit(urlsplit(base.database_url)._replace(path=f"/{name}"))
    settings = load_settings(database_url=url, topic_prefix=f"{name}-", admin_token=ADMIN)
    try:
        create_topics(settings)
        migrate(settings)
        account, key = None, None
        for rows in (0, total):
            if rows:
                assert account is not None
                started = time.monotonic()
                fill(settings, account, rows)
                took = time.monotonic() - started
                print(f"wrote {rows} deliveries + {rows} attempts in {took:.0f} s")
            account, key = measure(settings, rows, account, key)
    finally:
        with psycopg.connect(base.database_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def measure(
    settings: Settings, rows: int, account: str | None, key: str | None
) -> tuple[str, str]:
    port = _free_port()
    env = settings.as_environment()
    started = time.monotonic()
    process = subprocess.Popen(  # noqa: S603 (our own CLI)
        [str(ROOT / ".venv/bin/velourcity"), "api", "--no-sink", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    api = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                if httpx.get(f"{api}/openapi.json", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        if account is None:
            made = httpx.post(
                f"{api}/v1/accounts",
                json={"name": "footprint"},
                headers={"Authorization": f"Bearer {ADMIN}"},
            ).json()
            account, key = made["id"], made["api_key"]
        headers = {"Authorization": f"Bearer {key}"}
        first = httpx.get(f"{api}/v1/deliveries", headers=headers, timeout=30)
        assert first.status_code == 200, first.text
        ready = time.monotonic() - started
        latencies = []
        with httpx.Client(base_url=api, headers=headers, timeout=30) as client:  # keep-alive
            for _ in range(100):
                t = time.perf_counter()
                assert client.get("/v1/deliveries?limit=50").status_code == 200
                latencies.append((time.perf_counter() - t) * 1000)
        rss = _rss_mb(process.pid)
        q = statistics.quantiles(latencies, n=100)
        print(
            f"{rows:>9} rows: first /v1/deliveries answered {ready:.2f} s after start, "
            f"RSS {rss:.0f} MB, GET /v1/deliveries?limit=50 p50 {q[49]:.1f} ms p99 {q[98]:.1f} ms"
        )
    finally:
        process.terminate()
        process.wait(20)
    assert account is not None and key is not None
    return account, key


def fill(settings: Settings, account: str, total: int) -> None:
    now = int(time.time() * 1000)
    writer = LogWriter()
    with connect(settings, autocommit=True) as conn:
        for start in range(0, total, 10_000):
            records: list[tuple[str, bytes | None, int]] = []
            for n in range(start, min(total, start + 10_000)):
                at = now - (total - n) * 5  # spread over the last hours, newest last
                d = Delivery(
                    delivery_id=f"dlv_{n}",
                    event_id=f"evt_{n}",
                    event_type="order.created",
                    account_id=account,
                    endpoint_id=f"ep_{n % 20}",
                    body=b'{"type":"order.created","data":{"order_id":"ord_1"}}' + b" " * 500,
                    event_time=at,
                )
                a = Attempt(
                    delivery_id=d.delivery_id,
                    endpoint_id=d.endpoint_id,
                    account_id=account,
                    event_id=d.event_id,
                    event_type=d.event_type,
                    attempt=1,
                    at=at + 3,
                    status=200,
                    error=None,
                    latency_ms=10.0,
                    response_excerpt="ok",
                    outcome="delivered",
                )
                records += [("d", d.to_bytes(), at), ("a", a.to_bytes(), at + 3)]
            rows = rows_of(records, deliveries_topic="d", attempts_topic="a", cutoff_ms=0)
            writer.write(conn, rows)
        conn.execute("ANALYZE")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


if __name__ == "__main__":
    os.environ.setdefault("VELOURCITY_LOG_LEVEL", "warn")
    main()
