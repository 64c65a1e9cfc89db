"""`velourcity listen` forwards an account's webhooks to a local server, signed as in
production, and removes its endpoint on Ctrl-C: real broker, PostgreSQL, worker, API and CLI
processes. The endpoint goes through the control plane: the API lists it while it is there."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from conftest import settings_env

from pipeline.endpoints import load_endpoints
from pipeline.receiver import verify
from pipeline.topics import create_topics

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.timeout(180)]


def test_listen_forwards_a_triggered_event_and_cleans_up(
    settings_factory, api_factory, receiver_factory, worker_factory, tmp_path
) -> None:
    kafka_settings = settings_factory(admin_token="admin-secret")
    create_topics(kafka_settings)
    api = api_factory(kafka_settings)  # migrates the database; runs the outbox relay
    admin = {"Authorization": "Bearer admin-secret"}
    created = httpx.post(f"{api}/v1/accounts", json={"name": "Dev"}, headers=admin).json()
    account, key = created["id"], {"Authorization": f"Bearer {created['api_key']}"}
    local = receiver_factory()
    worker_factory(kafka_settings)
    env = settings_env(kafka_settings)
    stderr_path = tmp_path / "listen.err"
    with stderr_path.open("w") as stderr:
        listener = subprocess.Popen(
            [
                str(ROOT / ".venv/bin/velourcity"),
                "listen",
                "--account",
                account,
                "--forward-to",
                local.url,
                "--events",
                "order.created",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    try:
        deadline = time.monotonic() + 30
        while "Ready!" not in stderr_path.read_text() and time.monotonic() < deadline:
            assert listener.poll() is None, stderr_path.read_text()
            time.sleep(0.2)
        ready = stderr_path.read_text()
        secret = re.search(r"signing secret is (whsec_\S+)", ready)
        endpoint_id = re.search(r"\(endpoint (ep_\S+)\)", ready)
        assert secret and endpoint_id, ready
        listed = httpx.get(f"{api}/v1/endpoints", headers=key).json()["data"]
        assert [e["id"] for e in listed] == [endpoint_id[1]]  # in PostgreSQL, as the API shows
        assert endpoint_id[1] in load_endpoints(kafka_settings)  # and on the topic already
        time.sleep(2)  # the listen endpoint reaches the worker's cache

        subprocess.run(
            [
                str(ROOT / ".venv/bin/velourcity"),
                "trigger",
                "order.created",
                "--account",
                account,
            ],
            env=env,
            check=True,
            capture_output=True,
            timeout=60,
        )
        subprocess.run(  # filtered out by --events
            [
                str(ROOT / ".venv/bin/velourcity"),
                "trigger",
                "payment.completed",
                "--account",
                account,
            ],
            env=env,
            check=True,
            capture_output=True,
            timeout=60,
        )
        (request,) = local.wait_for(1, timeout=30)
        event = verify(request.headers, request.body, secret[1])
        assert event["type"] == "order.created"
        assert request.headers["User-Agent"] == "Velourcity-Webhooks/1.0"
        assert request.headers["X-Velourcity-Delivery-Attempt"] == "1"
    finally:
        listener.send_signal(signal.SIGINT)
        out, _ = listener.communicate(timeout=30)
    assert listener.returncode == 0, stderr_path.read_text()
    assert re.search(r"order\.created\s+evt_\S+\s+→ 200", out), out
    assert "payment.completed" not in out
    # deleted before the command returned: from PostgreSQL and, by its tombstone, the topic
    assert httpx.get(f"{api}/v1/endpoints", headers=key).json()["data"] == []
    assert not [e for e in load_endpoints(kafka_settings).values() if e.listen]
    assert len(local.requests) == 1  # the worker itself never POSTed to the listen endpoint
