"""`velourcity replay` against a real broker, real workers and real receivers: a targeted replay
re-sends one account's events with the same ids and a replay header; `--reset-offsets` is
refused while a worker runs and, once the workers stop, makes a restarted one send them again."""

from __future__ import annotations

import re
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from conftest import settings_env

from pipeline.endpoints import EndpointWriter, new_endpoint
from pipeline.events.samples import sample_event
from pipeline.publisher import Publisher
from pipeline.replay import FANOUT_APP, active_members
from pipeline.settings import Settings
from pipeline.topics import DELIVERIES

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.kafka, pytest.mark.timeout(240)]


def velourcity(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / ".venv" / "bin" / "velourcity"), *args],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def register(settings: Settings, account: str, url: str) -> None:
    EndpointWriter(settings).put(new_endpoint(settings, account_id=account, url=url))


def publish(settings: Settings, events: list[dict]) -> None:
    with Publisher(settings) as publisher:
        for event in events:
            publisher.send(event)
        publisher.flush()


def a_moment_ago() -> str:
    """An ISO-8601 time just before now (a second of leeway for the broker's clock)."""
    return (datetime.now(UTC) - timedelta(seconds=1)).isoformat()


def records_in(settings: Settings, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": "unused"})
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
            for p in partitions
        )
    finally:
        consumer.close()


def wait_until_group_is_empty(settings: Settings, timeout: float = 60.0) -> None:
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    deadline = time.monotonic() + timeout
    while active_members(admin, settings.group(FANOUT_APP)):
        assert time.monotonic() < deadline, "the fan-out group still has members"
        time.sleep(0.5)


def replay_headers(requests: list) -> list[tuple[str, str | None]]:
    return [(r.headers["webhook-id"], r.headers.get("X-Velourcity-Replay")) for r in requests]


def test_targeted_replay_resends_one_accounts_events_with_the_same_ids(
    kafka_settings, receiver_factory, worker_factory
) -> None:
    receiver_a, receiver_b = receiver_factory(), receiver_factory()
    register(kafka_settings, "acct_a", receiver_a.url)
    register(kafka_settings, "acct_b", receiver_b.url)
    since = a_moment_ago()
    a_events = [sample_event(t, "acct_a") for t in ("order.created", "payment.completed")] * 2
    a_events = [sample_event(e["type"], "acct_a") for e in a_events]
    b_events = [sample_event("order.created", "acct_b") for _ in range(2)]
    publish(kafka_settings, [*a_events, *b_events])
    worker = worker_factory(kafka_settings)
    first = receiver_a.wait_for(4)
    receiver_b.wait_for(2)
    assert worker.stop() == 0, worker.log()[-3000:]
    deliveries_before = records_in(kafka_settings, kafka_settings.topic(DELIVERIES))

    dry = velourcity(kafka_settings, "replay", "--since", since, "--account", "acct_a", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    per_partition = [int(n) for n in re.findall(r"(\d+) events would be replayed", dry.stdout)]
    assert len(per_partition) == 2 * kafka_settings.domain_partitions
    assert sum(per_partition) == 4, dry.stdout
    assert "6 events read, 0 undecodable skipped, 4 matched" in dry.stdout
    assert records_in(kafka_settings, kafka_settings.topic(DELIVERIES)) == deliveries_before

    done = velourcity(kafka_settings, "replay", "--since", since, "--account", "acct_a")
    assert done.returncode == 0, done.stderr
    assert "6 events read, 0 undecodable skipped, 4 matched, 4 deliveries queued" in done.stdout
    assert records_in(kafka_settings, kafka_settings.topic(DELIVERIES)) == deliveries_before + 4

    worker_factory(kafka_settings)
    requests = receiver_a.wait_for(8)
    time.sleep(2)  # anything sent to the other account would have arrived by now
    assert len(receiver_a.requests) == 8
    assert len(receiver_b.requests) == 2
    a_ids = sorted(e["id"] for e in a_events)
    assert sorted(replay_headers(first)) == [(i, None) for i in a_ids]
    assert sorted(replay_headers(requests[4:])) == [(i, "true") for i in a_ids]
    delivery_ids = {r.headers["X-Velourcity-Delivery-Id"] for r in first}
    assert {r.headers["X-Velourcity-Delivery-Id"] for r in requests[4:]} == delivery_ids


def test_reset_offsets_is_refused_while_a_worker_runs_then_replays_everything(
    kafka_settings, receiver_factory, worker_factory
) -> None:
    receiver = receiver_factory()
    register(kafka_settings, "acct_a", receiver.url)
    since = a_moment_ago()
    events = [sample_event("order.created", "acct_a") for _ in range(3)]
    worker = worker_factory(kafka_settings)
    publish(kafka_settings, events)
    receiver.wait_for(3)

    refused = velourcity(kafka_settings, "replay", "--since", since, "--reset-offsets")
    assert refused.returncode != 0
    group = kafka_settings.group(FANOUT_APP)
    assert f"consumer group {group} has 1 active member(s)" in refused.stderr

    assert worker.stop() == 0, worker.log()[-3000:]
    wait_until_group_is_empty(kafka_settings)
    dry = velourcity(kafka_settings, "replay", "--since", since, "--reset-offsets", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    moves = re.findall(r"partition \d+: (\w+) -> (\d+)", dry.stdout)
    assert len(moves) == 2 * kafka_settings.domain_partitions
    # The orders topic's committed offsets go back by the 3 events; payments stay put.
    assert sum(int(old) - int(new) for old, new in moves if old != "none") == 3, dry.stdout
    assert "dry run: no offsets changed" in dry.stdout
    again = velourcity(kafka_settings, "replay", "--since", since, "--reset-offsets", "--dry-run")
    assert again.stdout == dry.stdout  # the dry run changed nothing

    done = velourcity(kafka_settings, "replay", "--since", since, "--reset-offsets")
    assert done.returncode == 0, done.stderr
    worker_factory(kafka_settings)
    requests = receiver.wait_for(6)
    assert sorted(r.headers["webhook-id"] for r in requests[3:]) == sorted(e["id"] for e in events)
    assert all("X-Velourcity-Replay" not in r.headers for r in requests)  # a plain fan-out
