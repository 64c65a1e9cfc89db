"""The outbox relay across a SIGKILL, and the one-time import, on real PostgreSQL and Kafka.

A change committed in PostgreSQL reaches the compacted topic, and a worker sends with it, even
when the relay is killed with the change read but not produced, or produced but not marked
sent (then it is produced again: at least once, byte for byte the same record).
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from conftest import ROOT, settings_env
from test_delivery import publish

from pipeline.accounts import AccountWriter, new_account
from pipeline.controlplane import ControlPlane, importer
from pipeline.controlplane.store import VersionedEndpoint
from pipeline.db import async_pool, connect
from pipeline.endpoints import EndpointWriter, new_endpoint
from pipeline.events.samples import sample_event
from pipeline.exceptions import BrokerUnavailable
from pipeline.kafka.connection import librdkafka_config
from pipeline.settings import Settings
from pipeline.topics import ENDPOINTS, create_topics

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.timeout(180)]
T = TypeVar("T")
SIGKILL = -9


@pytest.fixture
def settings(database_settings: Settings) -> Settings:
    create_topics(database_settings)
    return database_settings


@pytest.fixture
def relay_factory(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start ``velourcity outbox-relay`` processes (``--fault ...`` to have one killed)."""
    started: list[subprocess.Popen[bytes]] = []

    def start(settings: Settings, *args: str) -> subprocess.Popen[bytes]:
        with (tmp_path / f"relay-{len(started)}.log").open("wb") as log:
            process = subprocess.Popen(
                [str(ROOT / ".venv/bin/velourcity"), "outbox-relay", *args],
                env=settings_env(settings),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.terminate()
            process.wait(20)


def store(settings: Settings, use: Callable[[ControlPlane], Awaitable[T]]) -> T:
    async def main() -> T:
        async with async_pool(settings) as pool:
            return await use(ControlPlane(pool))

    return asyncio.run(main())


def unsent(settings: Settings) -> int:
    with connect(settings) as conn:
        row = conn.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone()
    assert row is not None
    return int(row[0])


def records_of(
    settings: Settings, topic: str, isolation: str = "read_committed"
) -> list[tuple[bytes | None, bytes | None]]:
    """(key, value) of every record of the topic, by partition and offset, as a reader with this
    isolation level reads them (workers: ``read_committed``)."""
    consumer = Consumer(
        librdkafka_config(settings)
        | {
            "group.id": "count",
            "enable.partition.eof": True,
            "enable.auto.commit": False,
            "isolation.level": isolation,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        found, pending, deadline = [], set(partitions), time.monotonic() + 30
        while pending:
            assert time.monotonic() < deadline, "topic not read to its end"
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error() is not None:
                pending.discard(message.partition())
            else:
                found.append((message.key(), message.value()))
        return found
    finally:
        consumer.close()


def records_in(settings: Settings, topic: str) -> int:
    """How many records a worker reads from the topic (the relay's transaction markers take
    offsets too, so high watermarks would overcount)."""
    return len(records_of(settings, topic))


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        time.sleep(0.1)


def test_a_change_committed_before_the_relay_is_killed_reaches_the_workers(
    settings: Settings,
    relay_factory: Callable[..., subprocess.Popen[bytes]],
    receiver_factory: Callable[..., Any],
    worker_factory: Callable[..., Any],
) -> None:
    receiver = receiver_factory()
    endpoint = new_endpoint(settings, account_id="acct_a", url="http://127.0.0.1:9/nowhere")

    dying = relay_factory(settings, "--fault", "kill-before-produce")

    async def change(control: ControlPlane) -> VersionedEndpoint | None:
        await control.create_endpoint(endpoint)
        return await control.update_endpoint(endpoint.id, "acct_a", {"url": receiver.url})

    assert store(settings, change) is not None  # committed: the relay reads it, and dies
    assert dying.wait(60) == SIGKILL
    assert unsent(settings) == 2 and records_in(settings, settings.topic(ENDPOINTS)) == 0

    relay_factory(settings)  # restarted
    wait_until(lambda: unsent(settings) == 0, 30, "the restarted relay marks both rows sent")
    worker = worker_factory(settings)
    wait_until(lambda: "sender started" in worker.log(), 90, "the worker starts")
    event = sample_event("order.created", "acct_a")
    publish(settings, [event])
    (request,) = receiver.wait_for(1, timeout=60)  # sent to the URL of the change
    assert request.headers["webhook-id"] == event["id"]


def test_a_relay_killed_after_the_ack_produces_the_rows_again(
    settings: Settings,
    relay_factory: Callable[..., subprocess.Popen[bytes]],
    read_topic: Callable[..., list[Any]],
) -> None:
    endpoint = new_endpoint(settings, account_id="acct_a", url="http://127.0.0.1:9/hooks")
    dying = relay_factory(settings, "--fault", "kill-after-produce")
    store(settings, lambda control: control.create_endpoint(endpoint))
    assert dying.wait(60) == SIGKILL
    topic = settings.topic(ENDPOINTS)
    assert unsent(settings) == 1 and records_in(settings, topic) == 1  # produced, not marked

    relay_factory(settings)
    wait_until(lambda: unsent(settings) == 0, 30, "the restarted relay marks the row sent")
    first, again = read_topic(topic, 2)
    assert first.key() == again.key() == endpoint.id.encode()
    assert first.value() == again.value() == endpoint.to_json()  # the same record, harmless


def test_the_compacted_topics_are_imported_once(settings: Settings) -> None:
    account, api_key = new_account("Roma")
    AccountWriter(settings).put(account)
    kept = new_endpoint(settings, account_id=account.id, url="http://127.0.0.1:9/a")
    deleted = new_endpoint(settings, account_id=account.id, url="http://127.0.0.1:9/b")
    writer = EndpointWriter(settings)
    writer.put(kept)
    writer.put(deleted)
    writer.delete(deleted.id)  # a tombstone: not imported

    def migrate() -> str:
        done = subprocess.run(
            [str(ROOT / ".venv/bin/velourcity"), "db", "migrate"],
            env=settings_env(settings),
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return done.stdout

    assert "imported 1 accounts, 1 endpoints from Kafka" in migrate()
    assert "imported from Kafka before, nothing to do" in migrate()

    async def read(control: ControlPlane) -> tuple[Any, ...]:
        return (
            await control.authenticate(api_key),
            await control.endpoint(kept.id),
            await control.endpoint(deleted.id),
        )

    owner, found, gone = store(settings, read)
    assert owner is not None and owner.id == account.id
    assert found is not None and found.endpoint == kept and found.version == 1
    assert gone is None
    assert unsent(settings) == 0  # the topics hold these already: nothing to relay


def test_an_endpoint_a_worker_disabled_stays_disabled_through_later_changes(
    settings: Settings,
    relay_factory: Callable[..., subprocess.Popen[bytes]],
    receiver_factory: Callable[..., Any],
    worker_factory: Callable[..., Any],
) -> None:
    gone = receiver_factory(lambda _r, _n: (410, {}))  # 410 Gone: the worker disables it
    endpoint = new_endpoint(settings, account_id="acct_a", url=gone.url)
    store(settings, lambda control: control.create_endpoint(endpoint))
    relay_factory(settings)
    worker = worker_factory(settings)
    wait_until(lambda: "sender started" in worker.log(), 90, "the worker starts")
    publish(settings, [sample_event("order.created", "acct_a")])
    gone.wait_for(1, timeout=60)

    def disabled_in_postgres() -> bool:
        found = store(settings, lambda control: control.endpoint(endpoint.id))
        return found is not None and not found.endpoint.enabled

    wait_until(disabled_in_postgres, 30, "the worker's disable is written back")
    changed = store(
        settings,
        lambda control: control.update_endpoint(endpoint.id, "acct_a", {"description": "later"}),
    )
    assert changed is not None and not changed.endpoint.enabled  # not switched back on
    assert changed.endpoint.disabled_reason


def test_while_kafka_is_unreachable_nothing_is_marked_sent(
    settings: Settings,
    relay_factory: Callable[..., subprocess.Popen[bytes]],
    read_topic: Callable[..., list[Any]],
    tmp_path: Path,
) -> None:
    endpoint = new_endpoint(settings, account_id="acct_a", url="http://127.0.0.1:9/hooks")
    nowhere = settings.model_copy(update={"kafka_bootstrap": "127.0.0.1:1"})  # nothing listens
    blind = relay_factory(nowhere)
    store(settings, lambda control: control.create_endpoint(endpoint))
    log = tmp_path / "relay-0.log"
    wait_until(lambda: "outbox relay: retrying" in log.read_text(), 40, "a produce times out")
    assert unsent(settings) == 1  # not acked: still in the outbox
    blind.kill()
    blind.wait(30)

    relay_factory(settings)  # Kafka reachable again
    wait_until(lambda: unsent(settings) == 0, 30, "the row is sent once Kafka answers")
    (record,) = read_topic(settings.topic(ENDPOINTS), 1)
    assert record.value() == endpoint.to_json()


def test_one_relay_at_a_time_and_another_takes_over_when_it_dies(
    settings: Settings,
    relay_factory: Callable[..., subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    relays = [relay_factory(settings), relay_factory(settings)]
    logs = [tmp_path / "relay-0.log", tmp_path / "relay-1.log"]

    def holders() -> list[int]:
        return [i for i, log in enumerate(logs) if "outbox relay started" in log.read_text()]

    wait_until(lambda: len(holders()) == 1, 30, "one relay takes the lock")
    endpoint = new_endpoint(settings, account_id="acct_a", url="http://127.0.0.1:9/hooks")

    async def twenty_changes(control: ControlPlane) -> None:
        await control.create_endpoint(endpoint)
        for i in range(19):
            await control.update_endpoint(endpoint.id, "acct_a", {"description": str(i)})

    store(settings, twenty_changes)
    topic = settings.topic(ENDPOINTS)
    wait_until(lambda: unsent(settings) == 0, 30, "all sent")
    assert records_in(settings, topic) == 20  # each once: the other relay produced nothing
    (holder,) = holders()

    relays[holder].kill()  # its connection, and the lock with it, goes
    relays[holder].wait(10)
    store(settings, lambda c: c.update_endpoint(endpoint.id, "acct_a", {"description": "last"}))
    wait_until(lambda: unsent(settings) == 0, 30, "the other relay takes over")
    assert holders() == [0, 1]
    assert records_in(settings, topic) == 21


def test_an_import_without_the_broker_says_so_and_imports_nothing(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importer, "METADATA_SECONDS", 1.0)
    nowhere = settings.model_copy(update={"kafka_bootstrap": "127.0.0.1:1"})
    with pytest.raises(BrokerUnavailable, match="nothing imported"):
        importer.import_from_kafka(nowhere)
    with connect(settings) as conn:
        assert conn.execute("SELECT count(*) FROM control_plane_import").fetchone() == (0,)
