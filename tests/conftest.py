"""Shared fixtures: one real Kafka broker per test session, and a fresh topic prefix per test.

The broker: ``VELOURCITY_KAFKA_BOOTSTRAP`` when set; else testcontainers' Kafka module when a
Docker engine answers; else the project's own local broker (``scripts/kafka.sh up``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.settings import Settings
from pipeline.topics import create_topics

ROOT = Path(__file__).resolve().parents[1]
KAFKA_SCRIPT = ROOT / "scripts" / "kafka.sh"
# The image testcontainers' Kafka module knows how to start (Confluent 8.1 = Apache Kafka 4.1).
CONTAINER_IMAGE = "confluentinc/cp-kafka:8.1.0"


def _docker_engine_answers() -> bool:
    """True when a Docker engine answers ``/_ping`` (the client alone is not enough)."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        if host.startswith("unix://"):
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address: Any = host.removeprefix("unix://")
        elif host.startswith("tcp://"):
            conn = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            name, _, port = host.removeprefix("tcp://").partition(":")
            address = (name, int(port or 2375))
        else:
            return False
        with conn:
            conn.settimeout(3)
            conn.connect(address)
            conn.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            return b" 200 " in conn.recv(1024)
    except OSError:
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """The bootstrap address of a real broker for the whole session."""
    if configured := os.environ.get("VELOURCITY_KAFKA_BOOTSTRAP"):
        yield configured
        return
    if _docker_engine_answers():
        from testcontainers.community.kafka import KafkaContainer

        with KafkaContainer(CONTAINER_IMAGE).with_kraft() as kafka:
            yield kafka.get_bootstrap_server()
        return
    subprocess.run([str(KAFKA_SCRIPT), "up"], check=True, timeout=300)
    yield "127.0.0.1:9092"


@pytest.fixture
def prefix() -> str:
    """A topic / group prefix of this test's own."""
    return f"t{uuid.uuid4().hex[:10]}-"


@pytest.fixture
def settings_factory(kafka_bootstrap: str, prefix: str) -> Callable[..., Settings]:
    """Settings for this test's own stack on the session broker, with test-friendly defaults."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "kafka_bootstrap": kafka_bootstrap,
            "topic_prefix": prefix,
            "domain_partitions": 3,
            "delivery_partitions": 3,
            "internal_partitions": 1,
            "allowed_networks": "127.0.0.0/8",
            "retry_schedule": "1,2,2",
        } | overrides
        return Settings(**values)

    return make


@pytest.fixture
def kafka_settings(settings_factory: Callable[..., Settings]) -> Settings:
    """Settings for this test's stack, with every pipeline topic created."""
    settings = settings_factory()
    create_topics(settings)
    return settings


@pytest.fixture
def read_topic(kafka_bootstrap: str) -> Callable[..., list[Any]]:
    """``read_topic(topic, count, timeout=30)``: the first ``count`` records of a topic, from the
    beginning, through a throwaway consumer group (raises if fewer arrive in time)."""
    from confluent_kafka import Consumer

    def read(topic: str, count: int, timeout: float = 30.0) -> list[Any]:
        import time

        consumer = Consumer(
            {
                "bootstrap.servers": kafka_bootstrap,
                "group.id": f"reader-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        consumer.subscribe([topic])
        records: list[Any] = []
        deadline = time.monotonic() + timeout
        try:
            while len(records) < count and time.monotonic() < deadline:
                message = consumer.poll(0.5)
                if message is not None and message.error() is None:
                    records.append(message)
        finally:
            consumer.close()
        assert len(records) >= count, f"{topic}: {len(records)} of {count} records in {timeout}s"
        return records

    return read
