"""`make kafka` / `make kafka-down`: the local broker script, on ports and a folder of its own."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.kafka
ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "kafka.sh"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _brokers_using(home: Path) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if b"kafka.Kafka" in cmdline and str(home).encode() in cmdline:
                pids.append(int(proc.name))
    return pids


@pytest.mark.skipif(shutil.which("java") is None, reason="the local broker needs Java")
@pytest.mark.timeout(240)
def test_up_twice_leaves_one_broker_and_down_leaves_none(tmp_path: Path) -> None:
    home = tmp_path / "kafka"
    home.mkdir()
    shared_libs = ROOT / ".local" / "kafka" / "libs"
    if shared_libs.is_dir():  # reuse the jars the session broker fetched
        (home / "libs").symlink_to(shared_libs)
    env = os.environ | {
        "KAFKA_HOME_DIR": str(home),
        "KAFKA_PORT": str(_free_port()),
        "KAFKA_CONTROLLER_PORT": str(_free_port()),
        "KAFKA_HEAP": "-Xms128m -Xmx384m",
    }

    def run(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SCRIPT), command], env=env, capture_output=True, text=True, timeout=180
        )

    try:
        first = run("up")
        assert first.returncode == 0, first.stderr
        assert "ready" in first.stderr
        pids = _brokers_using(home)
        assert len(pids) == 1

        second = run("up")
        assert second.returncode == 0, second.stderr
        assert "already running" in second.stderr
        assert _brokers_using(home) == pids
    finally:
        down = run("down")
    assert down.returncode == 0, down.stderr
    assert _brokers_using(home) == []
    assert run("status").returncode == 3
