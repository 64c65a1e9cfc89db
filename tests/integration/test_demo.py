"""`velourcity demo --exit` runs the whole pipeline end to end on a real broker and a real
PostgreSQL and exits 0; its account and endpoints went through the control plane and its outbox."""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from pathlib import Path

import psycopg
import pytest

from pipeline.events import EVENT_TYPES
from pipeline.topics import ENDPOINTS

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

# A receiver's line, with both signatures verified: "B    ← order.created  attempt 2  evt_...  ..."
WEBHOOK_LINE = re.compile(
    r"^([AB]) +← (\S+)  attempt (\d+)  \S+  signatures: velourcity ✓ standard ✓  → (\d+)$",
    re.MULTILINE,
)
SUMMARY = "All 12 deliveries arrived: 6 at A on the first try, 6 at B after 2 retries each."


@pytest.mark.timeout(200)
def test_demo_delivers_every_event_to_both_receivers(
    kafka_bootstrap: str, fresh_database_url: str, tmp_path: Path
) -> None:
    env = (
        os.environ
        | {
            "VELOURCITY_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "VELOURCITY_DATABASE_URL": fresh_database_url,  # the demo migrates it
            "VELOURCITY_TOPIC_PREFIX": f"t{uuid.uuid4().hex[:10]}-demo-",
            "PYTHONIOENCODING": "utf-8",
        }
    )
    result = subprocess.run(
        [
            str(ROOT / ".venv" / "bin" / "velourcity"),
            "demo",
            "--exit",
            "--timeout",
            "150",
            "--log-dir",
            str(tmp_path),
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        encoding="utf-8",
        timeout=190,
    )
    log = tmp_path / "worker.log"
    worker_log = log.read_text(errors="replace") if log.exists() else "(no worker log)"
    assert result.returncode == 0, f"{result.stdout}{result.stderr}\n--- worker log:\n{worker_log}"
    assert SUMMARY in result.stdout
    seen: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for receiver, event_type, attempt, status in WEBHOOK_LINE.findall(result.stdout):
        seen.setdefault((receiver, event_type), []).append((int(attempt), int(status)))
    for event_type in EVENT_TYPES:
        assert seen[("A", event_type)] == [(1, 200)]
        assert sorted(seen[("B", event_type)]) == [(1, 500), (2, 500), (3, 200)]
    assert "stopping the worker" in result.stdout
    _assert_through_the_control_plane(result.stdout, fresh_database_url)


def _assert_through_the_control_plane(stdout: str, database_url: str) -> None:
    """The account is in PostgreSQL; each endpoint was written there with its outbox row, then
    deleted at the end (its tombstone queued the same way), and the relay sent them all."""
    account = re.search(r"^account (acct_\S+) \(API key vk_", stdout, re.MULTILINE)
    endpoint_ids = re.findall(r"^receiver [AB] on .*: endpoint (ep_\S+)$", stdout, re.MULTILINE)
    assert account and len(endpoint_ids) == 2, stdout
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT id FROM accounts").fetchall() == [(account[1],)]
        assert conn.execute("SELECT id FROM endpoints").fetchall() == []  # deleted on exit
        outbox = conn.execute(
            "SELECT key, value IS NULL, sent_at IS NOT NULL FROM outbox"
            " WHERE topic = %s ORDER BY id",
            (ENDPOINTS,),
        ).fetchall()
    assert outbox[:2] == [(e, False, True) for e in endpoint_ids]  # records, relayed
    assert sorted(outbox[2:]) == sorted((e, True, True) for e in endpoint_ids)  # tombstones
