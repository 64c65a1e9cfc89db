"""The whole pipeline on the local three-broker cluster, connected over SASL_SSL + SCRAM-SHA-512
only: every client of every process (publisher, worker, API, replay, topics) is given the TLS
listener's ports, where a client built without the connection settings cannot even connect.
Wrong credentials and an untrusted certificate stop each long-running command in one line.
Mutual TLS (a client certificate, no SASL) on its own listener, with librdkafka and aiokafka."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka.admin import AdminClient, ConfigResource  # type: ignore[attr-defined]
from conftest import Cluster, settings_env

from pipeline.events.samples import sample_event
from pipeline.kafka.connection import aiokafka_kwargs, check_connection, librdkafka_config
from pipeline.publisher import Publisher
from pipeline.settings import Settings
from pipeline.topics import DELIVERIES, pipeline_topics

ROOT = Path(__file__).resolve().parents[2]
VELOURCITY = str(ROOT / ".venv" / "bin" / "velourcity")
ADMIN = {"Authorization": "Bearer admin-secret"}
pytestmark = [pytest.mark.kafka, pytest.mark.cluster, pytest.mark.timeout(240)]


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_cluster: Cluster) -> str:
    """The SASL_SSL listener's ports: this module's stacks have no other way in."""
    return kafka_cluster.env["VELOURCITY_KAFKA_BOOTSTRAP"]


@pytest.fixture
def settings_factory(
    settings_factory: Callable[..., Settings], kafka_cluster: Cluster, prefix: str
) -> Iterator[Callable[..., Settings]]:
    def make(**overrides: Any) -> Settings:
        return settings_factory(**(kafka_cluster.settings | overrides))

    yield make
    # the test's topics go: a broker restarted after SIGKILL (the failover scenario) recovers
    # every partition log it holds, and that grows with each test's leftovers
    admin = AdminClient(librdkafka_config(make()))
    names = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)]
    for future in admin.delete_topics(names, operation_timeout=30).values() if names else []:
        future.result(30)


def velourcity(settings: Settings, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run(
        [VELOURCITY, *args],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _poll(check: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.3)


def test_topics_get_three_replicas_and_two_in_sync(settings_factory) -> None:
    settings = settings_factory()
    created = velourcity(settings, "topics", "create")
    assert created.returncode == 0, created.stderr
    assert "3 broker(s): replication factor 3, min.insync.replicas 2" in created.stdout

    admin = AdminClient(librdkafka_config(settings))
    names = [spec.name for spec in pipeline_topics(settings)]
    topics = admin.list_topics(timeout=10).topics
    for name in names:
        replicas = {len(p.replicas) for p in topics[name].partitions.values()}
        assert replicas == {3}, name
    resources = [ConfigResource(ConfigResource.Type.TOPIC, name) for name in names]
    for resource, future in admin.describe_configs(resources).items():
        assert future.result(timeout=10)["min.insync.replicas"].value == "2", resource


def test_publisher_worker_api_and_replay_over_sasl_ssl_only(
    settings_factory, receiver_factory, worker_factory, api_factory, kafka_cluster: Cluster
) -> None:
    settings = settings_factory(admin_token="admin-secret")
    assert velourcity(settings, "topics", "create").returncode == 0
    receiver = receiver_factory()
    api = api_factory(settings)
    account = httpx.post(f"{api}/v1/accounts", json={"name": "Roma"}, headers=ADMIN).json()
    key = {"Authorization": f"Bearer {account['api_key']}"}
    created = httpx.post(f"{api}/v1/endpoints", json={"url": receiver.url}, headers=key, timeout=10)
    assert created.status_code == 201, created.text

    worker = worker_factory(settings)  # reads the endpoint written through the API at start
    assert _poll(lambda: "sender started" in worker.log(), timeout=90), worker.log()
    since = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    events = [sample_event("order.created", account["id"]) for _ in range(10)]
    with Publisher(settings) as publisher:
        for event in events:
            publisher.send(event)
        publisher.flush()

    receiver.wait_for(len(events), timeout=90)
    assert {r.headers["webhook-id"] for r in receiver.requests} == {e["id"] for e in events}

    def delivered() -> list[dict[str, Any]]:
        rows = httpx.get(f"{api}/v1/deliveries?status=delivered&limit=100", headers=key).json()
        return rows["data"] if len(rows["data"]) == len(events) else []

    rows = _poll(delivered)
    assert {r["event_id"] for r in rows} == {e["id"] for e in events}

    replayed = velourcity(settings, "replay", "--since", since, "--account", account["id"])
    assert replayed.returncode == 0, replayed.stderr
    assert f"{len(events)} deliveries queued" in replayed.stdout
    requests = receiver.wait_for(2 * len(events), timeout=90)
    assert sorted(r.headers["webhook-id"] for r in requests[len(events) :]) == sorted(
        e["id"] for e in events
    )
    password = kafka_cluster.env["VELOURCITY_KAFKA_SASL_PASSWORD"]
    assert password not in worker.log() + replayed.stdout + replayed.stderr


COMMANDS = [
    ("topics", "create"),
    ("worker",),
    ("api", "--port", "0"),
    ("trigger", "order.created", "--account", "acct_a"),
    ("replay", "--since", "-1m", "--account", "acct_a"),
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_wrong_password_is_one_line_and_exit_2(settings_factory, command) -> None:
    settings = settings_factory(kafka_sasl_password="not-the-password")
    started = time.monotonic()
    done = velourcity(settings, *command, timeout=30)
    assert time.monotonic() - started < 15
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert "authentication failed for user 'velourcity' (SCRAM-SHA-512)" in done.stderr
    assert "not-the-password" not in done.stdout + done.stderr


@pytest.mark.parametrize("command", COMMANDS[:2], ids=lambda c: c[0])
def test_an_untrusted_certificate_is_one_line_and_exit_2(
    settings_factory, kafka_cluster: Cluster, command
) -> None:
    settings = settings_factory(kafka_ssl_ca_location=kafka_cluster.untrusted_ca)
    started = time.monotonic()
    done = velourcity(settings, *command, timeout=30)
    assert time.monotonic() - started < 15
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert "certificate not trusted (certificate verify failed)" in done.stderr


def test_mutual_tls_connects_with_the_client_certificate_only(
    settings_factory, kafka_cluster: Cluster
) -> None:
    no_sasl = dict.fromkeys(["kafka_sasl_mechanism", "kafka_sasl_username", "kafka_sasl_password"])
    mtls = kafka_cluster.mutual_tls | no_sasl
    settings = settings_factory(**mtls)
    assert check_connection(settings) == 3
    created = velourcity(settings, "topics", "create")
    assert created.returncode == 0, created.stderr

    async def aiokafka_lists_them() -> set[str]:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(**aiokafka_kwargs(settings))
        await admin.start()
        try:
            return set(await admin.list_topics())
        finally:
            await admin.close()

    assert settings.topic(DELIVERIES) in asyncio.run(aiokafka_lists_them())

    without = settings_factory(
        **mtls | {"kafka_ssl_certificate_location": None, "kafka_ssl_key_location": None}
    )
    done = velourcity(without, "worker", timeout=30)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert "the broker refused the client certificate" in done.stderr
