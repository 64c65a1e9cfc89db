"""The local three-broker cluster (``scripts/kafka-cluster.sh``) as the failover scenario uses
it: started when it is not running (and stopped again afterwards), its SASL_SSL settings, and
SIGKILL / restart of one node, which is both a broker and a controller."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from confluent_kafka.admin import AdminClient

from pipeline.kafka.connection import librdkafka_config
from pipeline.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "kafka-cluster.sh"


def _script(*args: str, timeout: float = 300) -> str:
    done = subprocess.run(  # noqa: S603 (our own script)
        [str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode not in (0, 3) or (args[0] != "status" and done.returncode):
        raise RuntimeError(f"kafka-cluster.sh {' '.join(args)}: {done.stderr.strip()[-500:]}")
    return done.stdout


class LocalCluster:
    def __init__(self) -> None:
        self._started = False
        self.settings: dict[str, Any] = {}
        """``Settings`` keyword arguments of the SASL_SSL listener (SCRAM-SHA-512)."""

    def __enter__(self) -> LocalCluster:
        running = subprocess.run([str(SCRIPT), "status"], capture_output=True, check=False)  # noqa: S603
        if running.returncode != 0:
            _script("up")
            self._started = True
        for line in _script("env").splitlines():
            name, _, value = line.removeprefix("export ").partition("=")
            self.settings[name.removeprefix("VELOURCITY_").lower()] = value
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._started:
            _script("down")

    @property
    def bootstrap(self) -> str:
        return str(self.settings["kafka_bootstrap"])

    def kill(self, node: int) -> None:
        _script("kill", str(node))

    def start(self, node: int) -> None:
        """Start the node again; returns once it answers on its own listener."""
        _script("start", str(node))

    def controller(self) -> int:
        """The node id of the active controller (the KRaft quorum's leader); asked up to three
        times (a quorum that has just changed may not answer at once)."""
        for attempt in range(3):
            try:
                return int(_script("controller", timeout=60).strip())
            except RuntimeError:
                if attempt == 2:
                    raise
                time.sleep(2)
        raise AssertionError("unreachable")


def leaders(settings: Settings, topic: str) -> dict[int, int]:
    """Broker id → how many partitions of ``topic`` it leads."""
    admin = AdminClient(librdkafka_config(settings))
    partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions.values()
    counts: dict[int, int] = {}
    for partition in partitions:
        counts[partition.leader] = counts.get(partition.leader, 0) + 1
    return dict(sorted(counts.items()))
