"""The log sink on a real broker and a real PostgreSQL: a ``velourcity log-sink`` process killed
with SIGKILL mid-run and started again leaves every delivery and attempt in the database once.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from conftest import settings_env

from pipeline.db import connect
from pipeline.delivery.record import Attempt, Delivery
from pipeline.kafka.config import producer_config
from pipeline.settings import Settings
from pipeline.topics import ATTEMPTS, DELIVERIES, create_topics

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.timeout(180)]


def produce(settings: Settings, start: int, count: int) -> None:
    """``count`` deliveries, each with two attempts, over eight endpoints."""
    producer = Producer(producer_config(settings))
    now = int(time.time() * 1000)
    for n in range(start, start + count):
        endpoint = f"ep_{n % 8}"
        d = Delivery(
            delivery_id=f"dlv_{n}",
            event_id=f"evt_{n}",
            event_type="order.created",
            account_id="acc",
            endpoint_id=endpoint,
            body=f'{{"n":{n}}}',
            event_time=now,
        )
        producer.produce(settings.topic(DELIVERIES), d.to_bytes(), key=endpoint)
        for number, outcome in ((1, "retry"), (2, "delivered")):
            a = Attempt(
                delivery_id=d.delivery_id,
                endpoint_id=endpoint,
                account_id="acc",
                event_id=d.event_id,
                event_type=d.event_type,
                attempt=number,
                at=now + number,
                status=500 if number == 1 else 200,
                error=None,
                latency_ms=1.0,
                response_excerpt="",
                outcome=outcome,  # type: ignore[arg-type]
            )
            producer.produce(settings.topic(ATTEMPTS), a.to_bytes(), key=endpoint)
        producer.poll(0)
    assert producer.flush(30) == 0


def counts(settings: Settings) -> tuple[int, int, int, int]:
    """Rows and distinct keys of both tables."""
    try:
        with connect(settings) as conn:
            row = conn.execute(
                "SELECT (SELECT count(*) FROM deliveries),"
                " (SELECT count(DISTINCT delivery_id) FROM deliveries),"
                " (SELECT count(*) FROM attempts),"
                " (SELECT count(DISTINCT (delivery_id, attempt)) FROM attempts)"
            ).fetchone()
    except Exception:  # not migrated yet: the sink does it when it starts
        return (0, 0, 0, 0)
    assert row is not None
    return (row[0], row[1], row[2], row[3])


def committed(settings: Settings) -> int:
    """Records the sink's group has committed, both topics together."""
    group = settings.group("log-sink")
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": group})
    try:
        wanted = [
            TopicPartition(settings.topic(t), p)
            for t in (DELIVERIES, ATTEMPTS)
            for p in range(settings.delivery_partitions)
        ]
        return sum(max(tp.offset, 0) for tp in consumer.committed(wanted, timeout=10))
    finally:
        consumer.close()


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what} within {timeout}s"
        time.sleep(0.05)


def test_a_sink_killed_mid_run_leaves_every_row_once(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = settings_factory()
    create_topics(settings)

    def start(n: int) -> subprocess.Popen[bytes]:
        with (tmp_path / f"sink-{n}.log").open("wb") as log:
            return subprocess.Popen(
                [str(ROOT / ".venv/bin/velourcity"), "log-sink"],
                env=settings_env(settings),
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    sink = start(1)
    try:
        produce(settings, 0, 2000)
        wait_for(lambda: counts(settings)[0] == 2000, 60, "the first 2000 deliveries sunk")
        produce(settings, 2000, 20_000)
        wait_for(lambda: counts(settings)[2] > 4000, 60, "the sink writing the second wave")
        sink.kill()  # SIGKILL: no clean shutdown, no last commit
        sink.wait(10)
        in_db, in_kafka = sum(counts(settings)[::2]), committed(settings)
        print(f"at the kill: {in_db} rows in the database, {in_kafka} records committed")
        produce(settings, 22_000, 1000)  # while no sink runs
        sink = start(2)
        wait_for(lambda: counts(settings)[0] == 23_000, 120, "every delivery after the restart")
        wait_for(lambda: counts(settings)[2] == 46_000, 60, "every attempt after the restart")
        time.sleep(1)  # anything written twice would show now
        assert counts(settings) == (23_000, 23_000, 46_000, 46_000)
        wait_for(lambda: committed(settings) == 23_000 * 3, 30, "the restarted sink's commits")
    finally:
        sink.kill()
        sink.wait(10)
