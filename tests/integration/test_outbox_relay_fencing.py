"""Two outbox relays on real PostgreSQL and Kafka: the first loses its database session mid-batch
(``pg_terminate_backend``) while still alive; the second takes the lock over and relays the same
rows and a newer change. When the first goes on with its batch, its producer has been fenced, so
the topic never ends on the older version it held."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from test_outbox_relay import records_of, store, wait_until

from pipeline.controlplane import ControlPlane
from pipeline.controlplane.relay import OutboxRelay, _try_lock
from pipeline.db import connect
from pipeline.endpoints import Endpoint, load_endpoints, new_endpoint
from pipeline.exceptions import PublishError
from pipeline.settings import Settings
from pipeline.topics import ENDPOINTS, create_topics

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.timeout(180)]


def descriptions(settings: Settings, endpoint_id: str, isolation: str) -> list[str | None]:
    """The endpoint's records on the topic, in order, as a reader with this isolation level
    sees them (None: a tombstone)."""
    return [
        None if value is None else Endpoint.from_json(value).description
        for key, value in records_of(settings, settings.topic(ENDPOINTS), isolation)
        if key == endpoint_id.encode()
    ]


def test_a_relay_that_lost_its_session_mid_batch_cannot_land_an_older_version(
    database_settings: Settings,
) -> None:
    settings = database_settings
    create_topics(settings)
    endpoint = new_endpoint(settings, account_id="acct_1", url="http://127.0.0.1:9/h")

    async def create_and_change(control: ControlPlane) -> Any:
        await control.create_endpoint(endpoint)  # description "" (v1)
        return await control.update_endpoint(endpoint.id, "acct_1", {"description": "v2"})

    store(settings, create_and_change)

    # The first relay takes the lock, reads both rows, and stops before producing them.
    first = OutboxRelay(settings)
    read, resume = threading.Event(), threading.Event()

    def pause(where: str) -> None:
        if where == "kill-before-produce":
            read.set()
            assert resume.wait(60)

    first._maybe_fault = pause  # type: ignore[method-assign]
    first_conn = connect(settings, autocommit=True)
    second_conn = connect(settings, autocommit=True)
    try:
        _both_relays(settings, endpoint, first, first_conn, second_conn, read, resume)
    finally:
        resume.set()
        first_conn.close()
        second_conn.close()
    committed = descriptions(settings, endpoint.id, "read_committed")
    assert committed == ["", "v2", "v3"]
    assert descriptions(settings, endpoint.id, "read_uncommitted") == committed  # refused whole
    assert load_endpoints(settings)[endpoint.id].description == "v3"  # a worker's copy


def _both_relays(
    settings: Settings,
    endpoint: Endpoint,
    first: OutboxRelay,
    first_conn: Any,
    second_conn: Any,
    read: threading.Event,
    resume: threading.Event,
) -> None:
    assert _try_lock(first_conn)
    first_pid = first_conn.info.backend_pid
    outcome: list[BaseException | int] = []

    def run_first() -> None:
        try:
            outcome.append(first.relay_batch(first_conn))
        except BaseException as exc:  # kept for the assertion
            outcome.append(exc)

    thread = threading.Thread(target=run_first)
    thread.start()
    assert read.wait(60)

    # Its session ends (its lock with it), a newer change commits, and a second relay takes over.
    with connect(settings, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (first_pid,))
    wait_until(lambda: _try_lock(second_conn), 30, "the second relay takes the lock")
    store(
        settings,
        lambda control: control.update_endpoint(endpoint.id, "acct_1", {"description": "v3"}),
    )
    second = OutboxRelay(settings)
    assert second.relay_batch(second_conn) == 3  # v1, v2 again, and v3

    # The first goes on with the rows it read: fenced, it lands nothing.
    resume.set()
    thread.join(60)
    assert len(outcome) == 1 and isinstance(outcome[0], PublishError), outcome
