#!/usr/bin/env python3
"""The log sink's rate on this machine: deliveries and attempts written into PostgreSQL per second.

Produces N deliveries and one attempt each (the usual case: delivered at the first try) on a
fresh topic prefix, then runs one :class:`~pipeline.deliverylog.sink.LogSink` into a fresh
database and times it from its first row to its last (the group join left out).

    VELOURCITY_KAFKA_BOOTSTRAP=127.0.0.1:9092 .venv/bin/python scripts/log_sink_rate.py [N]

The broker and server are the environment's (``make kafka``, ``make db``); the database and
the topics are dropped / left with their prefix afterwards.
"""

from __future__ import annotations

import sys
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import psycopg
from confluent_kafka import Producer

from pipeline.db import connect
from pipeline.delivery.record import Attempt, Delivery
from pipeline.deliverylog.sink import LogSink
from pipeline.kafka.config import producer_config
from pipeline.settings import Settings, load_settings
from pipeline.topics import ATTEMPTS, DELIVERIES, create_topics


def main() -> None:
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    base = load_settings()
    name = f"sinkrate_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base.database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    url = urlunsplit(urlsplit(base.database_url)._replace(path=f"/{name}"))
    settings = load_settings(database_url=url, topic_prefix=f"{name}-")
    try:
        create_topics(settings)
        produce(settings, total)
        sink = LogSink(settings).start()
        first = last = None
        while True:
            done = _count(settings)
            if done and first is None:
                first = (time.monotonic(), done)
            if done >= total:
                last = time.monotonic()
                break
            time.sleep(0.05)
        sink.stop()
        assert first is not None
        seconds = last - first[0]
        rate = (total - first[1]) / seconds
        print(f"{total} deliveries + {total} attempts sunk; from the first row: {seconds:.2f} s")
        print(f"attempts/s: {rate:,.0f}  (rows/s, both tables: {2 * rate:,.0f})")
    finally:
        with psycopg.connect(base.database_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')  # its sessions are closed


def _count(settings: Settings) -> int:
    try:
        with connect(settings) as conn:
            row = conn.execute("SELECT count(*) FROM attempts").fetchone()
    except psycopg.errors.UndefinedTable:  # the sink migrates when it starts
        return 0
    return int(row[0]) if row else 0


def _produce(producer: Producer, topic: str, value: bytes, key: str) -> None:
    while True:
        try:
            producer.produce(topic, value, key=key)
            return
        except BufferError:  # the local queue is full: let it drain
            producer.poll(0.1)


def produce(settings: Settings, total: int) -> None:
    producer = Producer(producer_config(settings, **{"linger.ms": 20}))
    now = int(time.time() * 1000)
    started = time.monotonic()
    for n in range(total):
        endpoint = f"ep_{n % 500}"
        d = Delivery(
            delivery_id=f"dlv_{n}",
            event_id=f"evt_{n}",
            event_type="order.created",
            account_id=f"acc_{n % 50}",
            endpoint_id=endpoint,
            body=b'{"type":"order.created","data":{"order_id":"ord_1","total":1999}}',
            event_time=now,
        )
        a = Attempt(
            delivery_id=d.delivery_id,
            endpoint_id=endpoint,
            account_id=d.account_id,
            event_id=d.event_id,
            event_type=d.event_type,
            attempt=1,
            at=now + 5,
            status=200,
            error=None,
            latency_ms=12.5,
            response_excerpt="ok",
            outcome="delivered",
            event_time=d.event_time,
        )
        _produce(producer, settings.topic(DELIVERIES), d.to_bytes(), endpoint)
        _produce(producer, settings.topic(ATTEMPTS), a.to_bytes(), endpoint)
        producer.poll(0)
    producer.flush(60)
    print(f"produced {total} deliveries + {total} attempts in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
