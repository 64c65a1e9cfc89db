"""A throwaway Kafka broker of the run's own (free ports, its own home under a temp dir), so
the broker-restart scenario never stops anyone else's broker. It uses the project's
``scripts/kafka.sh``; the jars are linked from ``.local/kafka/libs`` when they were fetched
there already, else the script fetches them."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path
from types import TracebackType

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "kafka.sh"
SHARED_LIBS = ROOT / ".local" / "kafka" / "libs"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class ThrowawayBroker:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.port, self.controller_port = free_port(), free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"

    def _script(self, command: str) -> None:
        env = dict(os.environ) | {
            "KAFKA_HOME_DIR": str(self.home),
            "KAFKA_PORT": str(self.port),
            "KAFKA_CONTROLLER_PORT": str(self.controller_port),
            "KAFKA_HEAP": "-Xms256m -Xmx768m",
        }
        subprocess.run([str(SCRIPT), command], env=env, check=True, timeout=300)  # noqa: S603

    def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        libs = self.home / "libs"
        if not libs.exists() and (SHARED_LIBS / ".version").exists():
            libs.symlink_to(SHARED_LIBS, target_is_directory=True)
        self._script("up")

    def stop(self) -> None:
        self._script("down")

    def __enter__(self) -> ThrowawayBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)
