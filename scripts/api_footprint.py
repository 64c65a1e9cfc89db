#!/usr/bin/env python3
"""An API process's start-up time, RSS and delivery-log routes with an empty log and a full one.

Starts ``velourcity api --no-sink`` on a fresh database (and topic prefix), creates an account,
stops it; fills the delivery log with ATTEMPTS attempts of that account, two per delivery (a 503
then the outcome: 1 % dead-lettered), spread over the last 30 days and 20 endpoints, with SQL
(``generate_series``, one day partition per statement); then starts the API again. Each time it
reports the seconds from the process start to the first answered ``GET /v1/deliveries``, the RSS
after the requests, and p50/p99 of 200 requests per delivery-log route through one keep-alive
connection.

    VELOURCITY_KAFKA_BOOTSTRAP=127.0.0.1:9092 .venv/bin/python scripts/api_footprint.py [ATTEMPTS]
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
from pipeline.deliverylog.partitions import day_of
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
                print(f"wrote {rows // 2} deliveries + {rows} attempts in {took:.0f} s")
            account, key = measure(settings, rows, account, key)
    finally:
        with psycopg.connect(base.database_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')  # its sessions are closed


def measure(settings: Settings, rows: int, account: str | None, key: str | None) -> tuple[str, str]:
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
        timings = {}
        with httpx.Client(base_url=api, headers=headers, timeout=30) as client:  # keep-alive
            for name, path in _routes(client, rows):
                latencies = []
                for _ in range(200):
                    t = time.perf_counter()
                    response = client.get(path)
                    latencies.append((time.perf_counter() - t) * 1000)
                    assert response.status_code == 200, (path, response.text)
                q = statistics.quantiles(latencies, n=100)
                timings[name] = f"p50 {q[49]:.1f} ms p99 {q[98]:.1f} ms"
        rss = _rss_mb(process.pid)
        print(
            f"{rows:>9} attempts: first /v1/deliveries {ready:.2f} s after start, RSS {rss:.0f} MB"
        )
        for name, timing in timings.items():
            print(f"    {name:<44} {timing}")
    finally:
        process.terminate()
        process.wait(20)
    assert account is not None and key is not None
    return account, key


TYPES = ("order.created", "order.driver_assigned", "order.picked_up", "order.delivered",
         "order.cancelled", "payment.completed")  # fmt: skip
_FILL_DELIVERIES = """
INSERT INTO deliveries (delivery_id, created_at, account_id, endpoint_id, event_id, event_type,
                        event_time, body, status, last_attempt_at)
SELECT 'dlv_' || n, to_timestamp((%(start)s + n * %(step)s) / 1000.0), %(account)s,
       'ep_' || n %% 20, 'evt_' || n, (%(types)s::text[])[1 + n %% 6],
       (%(start)s + n * %(step)s)::bigint, %(body)s,
       CASE WHEN n %% 100 = 0 THEN 'failed' ELSE 'delivered' END,
       to_timestamp((%(start)s + n * %(step)s + 65000) / 1000.0)
FROM generate_series(%(first)s::bigint, %(last)s::bigint) n
"""
_FILL_ATTEMPTS = """
INSERT INTO attempts (delivery_id, at, attempt, account_id, endpoint_id, event_id, event_type,
                      status, error, latency_ms, response_excerpt, outcome, next_attempt_at)
SELECT 'dlv_' || n, to_timestamp((%(start)s + n * %(step)s + 5000 + 60000 * (k - 1)) / 1000.0), k,
       %(account)s, 'ep_' || n %% 20, 'evt_' || n, (%(types)s::text[])[1 + n %% 6],
       CASE WHEN k = 1 OR n %% 100 = 0 THEN 503 ELSE 200 END, NULL, 12.5,
       CASE WHEN k = 1 OR n %% 100 = 0 THEN 'unavailable' ELSE 'ok' END,
       CASE WHEN k = 1 THEN 'retry' WHEN n %% 100 = 0 THEN 'dead_lettered' ELSE 'delivered' END,
       CASE WHEN k = 1 THEN to_timestamp((%(start)s + n * %(step)s + 65000) / 1000.0) END
FROM generate_series(%(first)s::bigint, %(last)s::bigint) n, generate_series(1, 2) k
"""


def _routes(client: httpx.Client, rows: int) -> list[tuple[str, str]]:
    """The delivery-log routes, with ids and a cursor taken from the log itself."""
    page = client.get("/v1/deliveries?limit=50").json()
    routes = [
        ("GET /v1/deliveries?limit=50", "/v1/deliveries?limit=50"),
        ("  ?endpoint_id=", "/v1/deliveries?limit=50&endpoint_id=ep_7"),
        ("  ?event_type=order.picked_up", "/v1/deliveries?limit=50&event_type=order.picked_up"),
        ("  ?status=failed", "/v1/deliveries?limit=50&status=failed"),
        ("  ?since=-36h&until=-24h", "/v1/deliveries?limit=50&since=-36h&until=-24h"),
        ("GET /v1/stats/deliveries (6 h)", "/v1/stats/deliveries"),
        ("  ?hours=24&endpoint_id=", "/v1/stats/deliveries?hours=24&endpoint_id=ep_7"),
    ]  # fmt: skip
    if page.get("next_cursor"):
        routes.append(
            ("  next page (?cursor=)", f"/v1/deliveries?limit=50&cursor={page['next_cursor']}")
        )
    if page["data"]:
        routes.append(("GET /v1/deliveries/{id}", f"/v1/deliveries/{page['data'][-1]['id']}"))
    return routes


def fill(settings: Settings, account: str, attempts: int) -> None:
    total = attempts // 2
    now = int(time.time() * 1000)
    start, step = now - 30 * 86_400_000, 30 * 86_400_000 // total  # the newest ~now
    per_day = 86_400_000 // step + 1
    body = '{"type":"order.created","data":{"order_id":"ord_1"}}' + " " * 500
    params = {"start": start, "step": step, "account": account, "types": list(TYPES), "body": body}
    with connect(settings, autocommit=True) as conn:
        LogWriter().ensure_partitions(conn, {day_of(start + d * 86_400_000) for d in range(32)})
        for first in range(0, total, per_day):
            span = params | {"first": first, "last": min(total, first + per_day) - 1}
            conn.execute(_FILL_DELIVERIES, span)
            conn.execute(_FILL_ATTEMPTS, span)
        conn.execute(
            "INSERT INTO attempt_minutes (account_id, endpoint_id, minute, outcome, attempts)"
            " SELECT account_id, endpoint_id, date_trunc('minute', at), outcome, count(*)"
            " FROM attempts GROUP BY 1, 2, 3, 4"
        )
        conn.execute("VACUUM ANALYZE")  # what autovacuum does to days that stopped changing


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
