"""`velourcity listen` forwards an account's webhooks to a local server, signed as in
production, and removes its endpoint on Ctrl-C: real broker, worker, CLI processes."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import settings_env

from pipeline.endpoints import load_endpoints
from pipeline.receiver import verify

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]


def test_listen_forwards_a_triggered_event_and_cleans_up(
    kafka_settings, receiver_factory, worker_factory, tmp_path
) -> None:
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
                "acct_dev",
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
        assert secret, ready
        time.sleep(2)  # the listen endpoint reaches the worker's cache

        subprocess.run(
            [
                str(ROOT / ".venv/bin/velourcity"),
                "trigger",
                "order.created",
                "--account",
                "acct_dev",
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
                "acct_dev",
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
    time.sleep(1)
    assert not [e for e in load_endpoints(kafka_settings).values() if e.listen]
    assert len(local.requests) == 1  # the worker itself never POSTed to the listen endpoint
