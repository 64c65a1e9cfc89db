"""PostgreSQL stopped mid-run, on a server of this test's own (scripts/postgres.sh on another
port): deliveries go on, the API answers 503 ``database_unavailable``, and once the server is
back the sink catches up and the delivery log is complete."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Receiver, WorkerProcess
from fastapi.testclient import TestClient
from test_delivery import publish

from pipeline.api import create_api
from pipeline.events.samples import sample_event
from pipeline.settings import Settings
from pipeline.topics import create_topics

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "postgres.sh"
ADMIN = {"Authorization": "Bearer admin-secret"}
pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.timeout(240)]


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


def test_deliveries_go_on_while_postgres_is_down_and_the_log_catches_up(
    own_postgres: OwnServer,
    settings_factory: Callable[..., Settings],
    receiver_factory: Callable[..., Receiver],
    worker_factory: Callable[[Settings], WorkerProcess],
) -> None:
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

        def delivered() -> int:
            response = api.get("/v1/deliveries?status=delivered&limit=200", headers=key)
            return len(response.json()["data"]) if response.status_code == 200 else -1

        before = [sample_event("order.created", account["id"]) for _ in range(10)]
        publish(settings, before)
        assert _poll(lambda: delivered() == 10, 60), "the first ten in the log"

        own_postgres.run("down")
        during = [sample_event("order.created", account["id"]) for _ in range(10)]
        publish(settings, during)
        receiver.wait_for(20, timeout=60)  # the hot path does not need the database

        down = api.get("/v1/deliveries", headers=key)
        assert down.status_code == 503, down.text
        assert down.json()["error"]["code"] == "database_unavailable"
        assert "try again" in down.json()["error"]["message"]
        assert api.get("/v1/stats/deliveries", headers=key).status_code == 503
        time.sleep(10)  # the sink keeps failing and backing off meanwhile

        own_postgres.run("up")
        assert _poll(lambda: delivered() == 20, 60), "the log caught up after the outage"
        rows = api.get("/v1/deliveries?limit=200", headers=key).json()["data"]
        assert sorted(r["event_id"] for r in rows) == sorted(e["id"] for e in before + during)
        assert all(r["attempts"] == 1 for r in rows)
