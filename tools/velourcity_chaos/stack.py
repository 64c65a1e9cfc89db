"""The processes and topics of one chaos run: its own topic prefix on a broker, an accounting
receiver, worker processes that can be killed and restarted, and a publisher that keeps the
broker's delivery reports."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from pipeline.controlplane import commands
from pipeline.endpoints import new_endpoint
from pipeline.events.samples import sample_event
from pipeline.exceptions import PublishError
from pipeline.kafka.connection import librdkafka_config
from pipeline.processes import stop_process
from pipeline.publisher import Publisher
from pipeline.settings import Settings
from pipeline.topics import create_topics
from velourcity_chaos.receiver import Mode

_PYTHON_CLI = "from pipeline.cli import main; main()"


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    log_path: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)

    def stop(self, timeout: float = 40.0) -> int:
        return stop_process(self.process, timeout)


class ReceiverProcess:
    """The accounting receiver (:mod:`velourcity_chaos.receiver`) in a child process."""

    def __init__(self, directory: Path) -> None:
        self.ledger_path = directory / "ledger.jsonl"
        self._log = (directory / "receiver.log").open("wb")
        self.process = subprocess.Popen(  # noqa: S603 (our own module)
            [sys.executable, "-m", "velourcity_chaos.receiver", "--ledger", str(self.ledger_path)],
            stdout=subprocess.PIPE,
            stderr=self._log,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().decode().split()
        if len(line) != 3 or line[0] != "ready":
            raise RuntimeError(f"the accounting receiver did not start: {line}")
        self.port, self.control_port = int(line[1]), int(line[2])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def _control(self, method: str, path: str) -> dict[str, Any]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.control_port}{path}", method=method, data=b""
        )
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
            result: dict[str, Any] = json.loads(answer.read())
            return result

    def set_mode(self, mode: Mode) -> None:
        self._control("POST", f"/mode/{mode}")

    def sync(self) -> dict[str, Any]:
        """Flush its ledger; its mode and request count."""
        return self._control("GET", "/stats")

    def stop(self) -> None:
        stop_process(self.process, 10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._log.close()


@dataclass
class Ledger:
    """What the receiver wrote down, read as it grows: per (event id, endpoint), how many
    ``200`` answers and when the first one came."""

    path: Path
    first_ok: dict[tuple[str, str], float] = field(default_factory=dict)
    oks: dict[tuple[str, str], int] = field(default_factory=dict)
    requests: int = 0
    refused_answers: int = 0
    last_at: float = 0.0
    _offset: int = 0

    def read(self) -> None:
        if not self.path.exists():
            return
        with self.path.open("rb") as ledger:
            ledger.seek(self._offset)
            data = ledger.read()
        end = data.rfind(b"\n") + 1
        self._offset += end
        for line in data[:end].splitlines():
            record = json.loads(line)
            self.requests += 1
            self.last_at = max(self.last_at, record["at"])
            if record["status"] != 200:
                self.refused_answers += 1
                continue
            pair = (record["event_id"], record["endpoint"])
            self.oks[pair] = self.oks.get(pair, 0) + 1
            self.first_ok.setdefault(pair, record["at"])

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in self.oks.values())


class TrackedPublisher:
    """The publisher SDK, keeping what its delivery reports say: which events the broker
    acknowledged (``acked``), which it refused (``failed``), and when each was sent."""

    def __init__(self, settings: Settings, **config: Any) -> None:
        self._publisher = Publisher(settings, config=config or None)
        self.sent_at: dict[str, float] = {}
        self.account_of: dict[str, str] = {}
        self.acked: set[str] = set()
        self.failed: set[str] = set()
        self.errors: list[str] = []

    def send(self, event: dict[str, Any]) -> None:
        self.sent_at[event["id"]] = time.time()
        self.account_of[event["id"]] = event["account_id"]
        self._publisher.send(event)

    def flush(self, timeout: float = 130.0) -> None:
        try:
            published = self._publisher.flush(timeout)
        except PublishError as exc:
            self.errors.append(str(exc)[:300])
            self.failed |= set(exc.failed)
            published = exc.published
        self.acked |= {p.event_id for p in published}

    @property
    def producer(self) -> Any:
        return self._publisher._producer


class Stack:
    """One run: topics under a prefix of its own, endpoints, the receiver and the workers."""

    def __init__(
        self,
        bootstrap: str,
        directory: Path,
        *,
        name: str,
        accounts: int = 6,
        **overrides: Any,
    ) -> None:
        self.directory = directory / name
        self.directory.mkdir(parents=True, exist_ok=True)
        values: dict[str, Any] = {
            "kafka_bootstrap": bootstrap,
            "topic_prefix": f"chaos-{name}-{uuid.uuid4().hex[:8]}-",
            "domain_partitions": 6,
            "delivery_partitions": 6,
            "internal_partitions": 1,
            "allowed_networks": "127.0.0.0/8",
            "retry_schedule": "1,2,4,8",
            "metrics_port": 0,
            "session_timeout": 6,
            "log_format": "json",
        } | overrides
        self.settings = Settings(**values)
        self.accounts = [f"acct_{n}" for n in range(accounts)]
        self.path_of: dict[str, str] = {}
        self.workers: list[Worker] = []
        self.restarts = 0
        for old in self.directory.glob("*"):
            old.unlink()  # a ledger and logs of an earlier run under the same name
        self.receiver = ReceiverProcess(self.directory)
        self.ledger = Ledger(self.receiver.ledger_path)
        self._lock = threading.Lock()

    # Setup ------------------------------------------------------------------------------

    def create(self) -> None:
        create_topics(self.settings)
        endpoints = []
        for account in self.accounts:
            path = f"/hooks/{account}"
            endpoints.append(
                new_endpoint(self.settings, account_id=account, url=self.receiver.url(path))
            )
            self.path_of[account] = path
        commands.put_endpoints_for_tools(self.settings, endpoints)  # store + outbox, or topic

    def events(self, count: int, *, seed: int = 7) -> Iterator[dict[str, Any]]:
        rng = random.Random(seed)
        for n in range(count):
            yield sample_event("order.created", self.accounts[n % len(self.accounts)], rng=rng)

    # Workers ----------------------------------------------------------------------------

    def start_worker(self) -> Worker:
        with self._lock:
            log_path = self.directory / f"worker-{len(self.workers)}.log"
            with log_path.open("wb") as log:
                process = subprocess.Popen(  # noqa: S603 (our own CLI)
                    [sys.executable, "-c", _PYTHON_CLI, "worker"],
                    env=self.settings.as_environment(),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.directory,
                )
            worker = Worker(process, log_path)
            self.workers.append(worker)
            return worker

    def running(self) -> list[Worker]:
        return [w for w in self.workers if w.alive()]

    def unexpected_exits(self) -> list[Worker]:
        """Workers that ended on their own (not by :meth:`kill` or :meth:`Worker.stop`)."""
        return [
            w
            for w in self.workers
            if not w.alive() and w.process.returncode not in (0, -signal.SIGKILL, -signal.SIGTERM)
        ]

    def tracebacks(self) -> list[str]:
        """Worker logs with an unhandled exception (a ``Traceback``)."""
        return [
            w.log_path.name
            for w in self.workers
            if "Traceback" in w.log_path.read_text(errors="replace")
        ]

    # Counting ---------------------------------------------------------------------------

    def count_topic(
        self, topic: str, header: str | None = None, *, distinct: tuple[str, ...] = ()
    ) -> tuple[int, dict[str, int]]:
        """Records on ``topic`` now, and (with ``header``) how many carry each of its values;
        with ``distinct`` (header names), records with the same values of those count once
        (a record quarantined twice, at least once, is one bad input)."""
        consumer = Consumer(
            {
                **librdkafka_config(self.settings),
                "group.id": f"chaos-count-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "fetch.max.bytes": 16 * 1024 * 1024,
                "max.partition.fetch.bytes": 16 * 1024 * 1024,
            }
        )
        try:
            meta = consumer.list_topics(topic, timeout=10).topics[topic]
            ends: dict[int, int] = {}
            for p in meta.partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                if high > low:
                    ends[p] = high
            total = sum(ends.values())  # retention never trims a test topic this young
            by_value: dict[str, int] = {}
            if header is None or not ends:
                return total, by_value
            consumer.assign([TopicPartition(topic, p, 0) for p in ends])
            seen, deadline = 0, time.monotonic() + 60
            identities: set[tuple[object, ...]] = set()
            while seen < total and time.monotonic() < deadline:
                message = consumer.poll(0.5)
                if message is None or message.error() is not None:
                    continue
                seen += 1
                headers = dict(message.headers() or [])
                if distinct:
                    identity = tuple(headers.get(name) for name in distinct)
                    if identity in identities:
                        continue
                    identities.add(identity)
                value = headers.get(header, b"?")
                key = value.decode(errors="replace") if isinstance(value, bytes) else "?"
                by_value[key] = by_value.get(key, 0) + 1
            return (len(identities) if distinct else total), by_value
        finally:
            consumer.close()

    # Teardown ---------------------------------------------------------------------------

    def close(self, *, delete_topics: bool = True) -> None:
        for worker in self.workers:
            worker.stop()
        self.receiver.stop()
        if delete_topics:
            admin = AdminClient(librdkafka_config(self.settings))
            try:
                names = [
                    t
                    for t in admin.list_topics(timeout=10).topics
                    if t.startswith(self.settings.topic_prefix)
                ]
                if names:
                    for future in admin.delete_topics(names, operation_timeout=30).values():
                        try:
                            future.result(30)
                        except Exception:  # noqa: S112 (best effort: a leftover test topic)
                            continue
            except Exception:  # noqa: S110 (the broker of scenario 2 may be gone already)
                pass


@contextmanager
def stack(bootstrap: str, directory: Path, *, name: str, **overrides: Any) -> Iterator[Stack]:
    run = Stack(bootstrap, directory, name=name, **overrides)
    try:
        run.create()
        yield run
    finally:
        run.close()
