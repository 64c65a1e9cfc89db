"""PostgreSQL stopped mid-run, on a server of this test's own (scripts/postgres.sh on another
port): deliveries go on, the API answers 503 ``database_unavailable``, and once the server is
back the sink catches up and the delivery log is complete."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Receiver, WorkerProcess
from fastapi.testclient import TestClient

from pipeline.api import create_api
from pipeline.events.samples import sample_event
from pipeline.publisher import Publisher
from pipeline.settings import Settings
from pipeline.topics import create_topics

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "postgres.sh"
ADMIN = {"Authorization": "Bearer admin-secret"}
pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.timeout(300)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OwnServer:
    def __init__(self) -> None:
        self.env = os.environ | {
            "PG_PORT": str(_free_port()),
            "PG_HOME_DIR": f"/var/tmp/velourcity-test-{uuid.uuid4().hex[:12]}",
        }

    def run(self, command: str) -> str:
        done = subprocess.run(
            [str(SCRIPT), command], env=self.env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()


@pytest.fixture
def own_postgres() -> Iterator[OwnServer]:
    if os.environ.get("VELOURCITY_DATABASE_URL"):
        pytest.skip("stops a server of its own, started with scripts/postgres.sh")
    server = OwnServer()
    server.run("up")
    yield server
    server.run("reset")


def _poll(check: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


class Stream:
    """Publishes ``order.created`` events at a steady rate from a thread until stopped."""

    def __init__(self, settings: Settings, account_id: str, per_second: float) -> None:
        self.events: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(settings, account_id, 1 / per_second), daemon=True
        )

    def _run(self, settings: Settings, account_id: str, gap: float) -> None:
        with Publisher(settings) as publisher:
            while not self._stop.wait(gap):
                event = sample_event("order.created", account_id)
                publisher.send(event)
                self.events.append(event)
            publisher.flush()

    def __enter__(self) -> Stream:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def test_deliveries_go_on_while_postgres_is_down_and_the_log_catches_up(
    own_postgres: OwnServer,
    settings_factory: Callable[..., Settings],
    receiver_factory: Callable[..., Receiver],
    worker_factory: Callable[[Settings], WorkerProcess],
) -> None:
    """A steady 10 events/s before, during and after 30 s without PostgreSQL."""
    settings = settings_factory(admin_token="admin-secret", database_url=own_postgres.run("url"))
    create_topics(settings)
    receiver = receiver_factory()
    worker = worker_factory(settings)
    with TestClient(create_api(settings)) as api:  # the sink runs in the API's process
        account = api.post("/v1/accounts", json={"name": "Oslo"}, headers=ADMIN).json()
        key = {"Authorization": f"Bearer {account['api_key']}"}
        assert api.post("/v1/endpoints", json={"url": receiver.url}, headers=key).status_code == 201
        assert _poll(lambda: "sender started" in worker.log(), 90), worker.log()
        time.sleep(3)  # the new endpoint reaches the worker's cache

        def logged(status: str = "delivered") -> list[dict[str, Any]] | None:
            rows, cursor = [], ""
            while True:
                response = api.get(f"/v1/deliveries?status={status}&limit=200{cursor}", headers=key)
                if response.status_code != 200:
                    return None
                page = response.json()
                rows += page["data"]
                if not page.get("next_cursor"):
                    return rows
                cursor = f"&cursor={page['next_cursor']}"

        with Stream(settings, account["id"], per_second=10) as stream:
            assert _poll(lambda: len(logged() or []) >= 20, 60), "the log fills before the outage"

            own_postgres.run("down")
            stopped_at, received_then = time.monotonic(), len(receiver.requests)
            down = api.get("/v1/deliveries", headers=key)
            assert down.status_code == 503, down.text
            assert down.json()["error"]["code"] == "database_unavailable"
            assert "try again" in down.json()["error"]["message"]
            assert api.get("/v1/stats/deliveries", headers=key).status_code == 503
            time.sleep(max(0.0, 30 - (time.monotonic() - stopped_at)))
            # the hot path does not need the database: ~300 arrived meanwhile
            assert len(receiver.requests) - received_then >= 200, len(receiver.requests)

            own_postgres.run("up")
            time.sleep(5)
        published = {e["id"] for e in stream.events}
        receiver.wait_for(len(published), timeout=60)
        rows = _poll(lambda: (r := logged()) is not None and len(r) >= len(published) and r, 90)
        assert rows, "the log caught up after the outage"
        ids = [r["event_id"] for r in rows]
        assert len(ids) == len(set(ids)) and set(ids) == published  # none missing, none twice
        assert all(r["attempts"] == 1 for r in rows)
        assert logged("pending") == [] and logged("retrying") == []
