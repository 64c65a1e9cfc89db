"""How long a control-plane change takes: its transaction (row + outbox), and from the commit to
the record on the compacted endpoints topic through the outbox relay.

    .venv/bin/python scripts/control_plane_latency.py [changes=200]

Uses VELOURCITY_KAFKA_BOOTSTRAP and VELOURCITY_DATABASE_URL (its role creates a database of its
own, dropped afterwards) and a topic prefix of its own. Prints p50 / p99 / max in milliseconds.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import threading
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import psycopg
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from psycopg import sql

from pipeline.controlplane import ControlPlane
from pipeline.controlplane.relay import OutboxRelay
from pipeline.db import async_pool, migrate
from pipeline.endpoints import new_endpoint
from pipeline.settings import Settings, load_settings
from pipeline.topics import ENDPOINTS, create_topics


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered):.1f}  p99 {p99:.1f}  max {ordered[-1]:.1f} ms"


def main(changes: int) -> None:
    base = load_settings()
    name = f"latency_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base.database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = urlunsplit(urlsplit(base.database_url)._replace(path=f"/{name}"))
    settings = load_settings(
        database_url=url, topic_prefix=f"lat{uuid.uuid4().hex[:6]}-", allowed_networks="127.0.0.0/8"
    )
    try:
        create_topics(settings)
        migrate(settings)
        run(settings, changes)
    finally:
        with psycopg.connect(base.database_url, autocommit=True) as conn:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            conn.execute(drop.format(sql.Identifier(name)))


def run(settings: Settings, changes: int) -> None:
    topic = settings.topic(ENDPOINTS)
    arrived: dict[bytes, float] = {}
    stop = threading.Event()
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": "latency"})
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])

    def follow() -> None:
        while not stop.is_set():
            message = consumer.poll(0.05)
            if message is not None and message.error() is None and message.value():
                arrived.setdefault(message.value(), time.monotonic())

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    relay = OutboxRelay(settings).start()
    endpoint = new_endpoint(settings, account_id="acct_lat", url="http://127.0.0.1:9/x")
    commits: list[float] = []
    to_topic: list[float] = []

    async def changes_() -> None:
        async with async_pool(settings) as pool:
            store = ControlPlane(pool)
            await store.create_endpoint(endpoint)
            for i in range(changes):
                started = time.monotonic()
                changed = await store.update_endpoint(
                    endpoint.id, "acct_lat", {"description": str(i)}
                )
                committed = time.monotonic()
                assert changed is not None
                value = changed.endpoint.to_json()
                deadline = committed + 30
                while value not in arrived and time.monotonic() < deadline:  # noqa: ASYNC110
                    await asyncio.sleep(0.001)
                assert value in arrived, f"change {i} not on {topic} within 30 s"
                commits.append((committed - started) * 1000)
                to_topic.append((arrived[value] - committed) * 1000)

    try:
        asyncio.run(changes_())
    finally:
        stop.set()
        relay.stop()
        follower.join(5)
        consumer.close()
    print(f"{changes} PATCH-like changes, one after another")
    print(f"  transaction (UPDATE + outbox row + commit): {percentiles(commits)}")
    print(f"  commit -> record on the compacted topic:    {percentiles(to_topic)}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
