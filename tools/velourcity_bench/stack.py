"""One benchmark stack on the running broker: its own topic prefix and topics, ``velourcity
worker`` processes, the fast receiver in its own process, endpoints, and the CPU and memory
the pipeline's processes use (read from ``/proc``).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka.admin import AdminClient

from pipeline.controlplane import commands
from pipeline.endpoints.model import Endpoint, new_endpoint
from pipeline.kafka.connection import librdkafka_config
from pipeline.processes import stop_process
from pipeline.settings import Settings
from pipeline.topics import create_topics, pipeline_topics, retry_tiers, retry_topic_name
from velourcity_bench.receiver import Record

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def machine_busy_seconds() -> float:
    """CPU seconds every core of the machine spent busy so far (``/proc/stat``)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / CLOCK_TICKS


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM), in MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class ReceiverProcess:
    """The fast receiver (:mod:`velourcity_bench.receiver`) in a process of its own."""

    def __init__(self, log_path: Path) -> None:
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "velourcity_bench.receiver", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=self._log,
        )
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline().strip() or 0)
        if not self.port:
            raise RuntimeError(f"the bench receiver did not start; see {log_path}")
        self._read = 0
        self.records: list[Record] = []

    def url(self, mode: str, tag: str) -> str:
        return f"http://127.0.0.1:{self.port}/{mode}/{tag}"

    def _get(self, path: str) -> bytes:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("GET", path)
            return conn.getresponse().read()
        finally:
            conn.close()

    def received(self) -> int:
        return int(orjson.loads(self._get("/_stats"))["received"])

    def collect(self) -> list[Record]:
        """Every record so far (fetched incrementally)."""
        body = self._get(f"/_dump?from={self._read}")
        new = [tuple(orjson.loads(line)) for line in body.splitlines() if line]
        self.records.extend(new)
        self._read += len(new)
        return self.records

    def stop(self) -> None:
        stop_process(self.process, 10)
        self._log.close()


@dataclass
class Stack:
    """Topics, workers and endpoints of one scenario, under a prefix of its own."""

    settings: Settings
    log_dir: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @classmethod
    def create(cls, bootstrap: str, log_dir: Path, **overrides: Any) -> Stack:
        values: dict[str, Any] = {
            "kafka_bootstrap": bootstrap,
            "topic_prefix": f"bench{uuid.uuid4().hex[:8]}-",
            "allowed_networks": "127.0.0.0/8",
            "metrics_port": 0,
        } | overrides
        settings = Settings(**values)
        create_topics(settings)
        log_dir.mkdir(parents=True, exist_ok=True)
        return cls(settings=settings, log_dir=log_dir)

    def start_workers(self, count: int) -> None:
        """``velourcity worker`` processes with the stack's settings (``http_client`` and
        ``event_loop`` among them)."""
        command = [str(Path(sys.executable).with_name("velourcity")), "worker"]
        for index in range(count):
            log = self._worker_log(index).open("wb")
            self.workers.append(
                subprocess.Popen(  # noqa: S603 (our own entry point)
                    command,
                    env=self.settings.as_environment(),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.log_dir,
                )
            )
            log.close()

    def _worker_log(self, index: int) -> Path:
        role = self.settings.worker_role
        name = f"worker-{index}" if role == "all" else f"worker-{index}-{role}"
        return self.log_dir / f"{name}.log"

    def endpoint(self, account_id: str, url: str) -> Endpoint:
        endpoint = new_endpoint(self.settings, account_id=account_id, url=url)
        commands.put_endpoints_for_tools(self.settings, [endpoint])  # store + outbox, or topic
        return endpoint

    def retry_records(self) -> int:
        """Records written to the retry tiers so far (retries, and deliveries deferred there
        because their endpoint had too many taken: ``endpoint_max_in_flight`` + ``_queued``)."""
        topics = [retry_topic_name(self.settings, d) for d in retry_tiers(self.settings)]
        return self.records_in(topics)

    def records_in(self, topics: list[str], consumer: Any = None) -> int:
        """Records in these topics (high minus low watermark of every partition)."""
        from confluent_kafka import Consumer, TopicPartition

        own = consumer is None
        if own:
            consumer = Consumer({**librdkafka_config(self.settings), "group.id": "bench-marks"})
        total = 0
        try:
            for topic in topics:
                for partition in range(self.settings.delivery_partitions):
                    low, high = consumer.get_watermark_offsets(
                        TopicPartition(topic, partition), timeout=10
                    )
                    total += high - low
        finally:
            if own:
                consumer.close()
        return int(total)

    def wait_groups_stable(self, timeout: float = 60.0) -> None:
        """Wait until every worker is a member of the fan-out's and the sender's consumer
        groups and both are stable, so that no rebalance lands in a measured window (with
        ``--workers 2`` the second worker joins after the first has taken every partition)."""
        from confluent_kafka.admin import AdminClient

        role = self.settings.worker_role
        groups = [
            self.settings.group(name)
            for name, runs in (("velourcity-webhooks", role != "sender"),
                               ("velourcity-sender", role != "fanout"))
            if runs
        ]  # fmt: skip
        admin = AdminClient(librdkafka_config(self.settings))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            futures = admin.describe_consumer_groups(groups, request_timeout=10)
            described = []
            for future in futures.values():
                with contextlib.suppress(Exception):
                    described.append(future.result(15))
            if len(described) == len(groups) and all(
                len(g.members) == len(self.workers) and str(g.state).endswith("STABLE")
                for g in described
            ):
                return
            self.check_alive()
            time.sleep(0.5)
        raise RuntimeError(f"consumer groups {groups} not stable with every worker in {timeout}s")

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(w.pid) for w in self.workers)

    def peak_rss_mb(self) -> float:
        return sum(peak_rss_mb(w.pid) for w in self.workers)

    def check_alive(self) -> None:
        for index, worker in enumerate(self.workers):
            if worker.poll() is not None:
                log = self._worker_log(index).read_text(errors="replace")
                raise RuntimeError(f"worker {index} exited ({worker.returncode}):\n{log[-3000:]}")

    def stop_workers(self) -> None:
        """SIGTERM every worker (SIGKILL after 30 s); the topics stay."""
        for worker in self.workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for worker in self.workers:
            try:
                worker.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait(10)
        self.workers.clear()

    def close(self) -> None:
        self.stop_workers()
        names = [spec.name for spec in pipeline_topics(self.settings)]
        with contextlib.suppress(Exception):  # best effort: a leftover topic costs only disk
            for future in (
                AdminClient(librdkafka_config(self.settings))
                .delete_topics(names, operation_timeout=30)
                .values()
            ):
                future.result(30)
