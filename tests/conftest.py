"""Shared fixtures: one real Kafka broker and one real PostgreSQL server per test session, a
fresh topic prefix and a fresh database per test.

The broker: ``VELOURCITY_KAFKA_BOOTSTRAP`` when set; else testcontainers' Kafka module when a
Docker engine answers; else the project's own local broker (``scripts/kafka.sh up``).
PostgreSQL likewise: ``VELOURCITY_DATABASE_URL`` when set (its role may create databases);
else testcontainers' PostgreSQL module; else ``scripts/postgres.sh up``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from pipeline.kafka.connection import librdkafka_config
from pipeline.processes import stop_process
from pipeline.settings import Settings
from pipeline.topics import create_topics

ROOT = Path(__file__).resolve().parents[1]
KAFKA_SCRIPT = ROOT / "scripts" / "kafka.sh"
POSTGRES_SCRIPT = ROOT / "scripts" / "postgres.sh"
POSTGRES_IMAGE = "postgres:15"
CLUSTER_SCRIPT = ROOT / "scripts" / "kafka-cluster.sh"
# The image testcontainers' Kafka module knows how to start (Confluent 8.1 = Apache Kafka 4.1).
CONTAINER_IMAGE = "confluentinc/cp-kafka:8.1.0"


def _docker_engine_answers() -> bool:
    """True when a Docker engine answers ``/_ping`` (the client alone is not enough)."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        if host.startswith("unix://"):
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address: Any = host.removeprefix("unix://")
        elif host.startswith("tcp://"):
            conn = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            name, _, port = host.removeprefix("tcp://").partition(":")
            address = (name, int(port or 2375))
        else:
            return False
        with conn:
            conn.settimeout(3)
            conn.connect(address)
            conn.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            return b" 200 " in conn.recv(1024)
    except OSError:
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """The bootstrap address of a real broker for the whole session."""
    if configured := os.environ.get("VELOURCITY_KAFKA_BOOTSTRAP"):
        yield configured
        return
    if _docker_engine_answers():
        from testcontainers.community.kafka import KafkaContainer

        with KafkaContainer(CONTAINER_IMAGE).with_kraft() as kafka:
            yield kafka.get_bootstrap_server()
        return
    subprocess.run([str(KAFKA_SCRIPT), "up"], check=True, timeout=300)
    yield "127.0.0.1:9092"


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """The URL of a real PostgreSQL server (its own database) for the whole session."""
    if configured := os.environ.get("VELOURCITY_DATABASE_URL"):
        yield configured
        return
    if _docker_engine_answers():
        from testcontainers.community.postgres import PostgresContainer

        with PostgresContainer(POSTGRES_IMAGE, driver=None) as postgres:
            yield postgres.get_connection_url()
        return
    subprocess.run([str(POSTGRES_SCRIPT), "up"], check=True, timeout=600)
    done = subprocess.run(
        [str(POSTGRES_SCRIPT), "url"], check=True, capture_output=True, text=True, timeout=30
    )
    yield done.stdout.strip()


@pytest.fixture
def fresh_database_url(database_url: str) -> Iterator[str]:
    """An empty database of this test's own on the session server (dropped afterwards)."""
    import psycopg
    from psycopg import sql

    name = f"t{uuid.uuid4().hex[:16]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        # template0: nobody connects to it (a session on template1 fails CREATE DATABASE)
        create = sql.SQL("CREATE DATABASE {} TEMPLATE template0")
        conn.execute(create.format(sql.Identifier(name)))
    parts = urlsplit(database_url)
    yield urlunsplit(parts._replace(path=f"/{name}"))
    with psycopg.connect(database_url, autocommit=True) as conn:
        drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        conn.execute(drop.format(sql.Identifier(name)))


@pytest.fixture
def database_settings(settings_factory: Callable[..., Settings]) -> Settings:
    """Settings for this test's stack with its own database, migrated (topics not created)."""
    from pipeline.db import migrate

    settings = settings_factory()
    migrate(settings)
    return settings


@dataclass(frozen=True)
class Cluster:
    """The local three-broker cluster (``scripts/kafka-cluster.sh``)."""

    env: dict[str, str]
    """``VELOURCITY_KAFKA_*`` of its SASL_SSL listener (SCRAM-SHA-512, the local CA)."""

    @property
    def settings(self) -> dict[str, str]:
        """The same as ``Settings`` keyword arguments."""
        return {k.removeprefix("VELOURCITY_").lower(): v for k, v in self.env.items()}

    @property
    def untrusted_ca(self) -> str:
        return str(Path(self.env["VELOURCITY_KAFKA_SSL_CA_LOCATION"]).with_name("other-ca.pem"))

    @property
    def mutual_tls(self) -> dict[str, str]:
        """``Settings`` keyword arguments of its mutual-TLS listener (a client certificate)."""
        exports = self.script("env-mtls")
        return {
            name.removeprefix("export VELOURCITY_").lower(): value
            for name, _, value in (line.partition("=") for line in exports.splitlines())
            if name.startswith("export ")
        }

    def script(self, *args: str, timeout: float = 180) -> str:
        done = subprocess.run(
            [str(CLUSTER_SCRIPT), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )
        return done.stdout


@pytest.fixture(scope="session")
def kafka_cluster() -> Iterator[Cluster]:
    """The three-broker cluster for the whole session: started unless it runs already (then
    it is left running), and stopped at the end when this fixture started it."""
    was_running = subprocess.run([str(CLUSTER_SCRIPT), "status"], capture_output=True).returncode
    subprocess.run([str(CLUSTER_SCRIPT), "up"], check=True, timeout=300)
    exports = subprocess.run(
        [str(CLUSTER_SCRIPT), "env"], capture_output=True, text=True, check=True
    ).stdout
    env = dict(
        line.removeprefix("export ").split("=", 1)
        for line in exports.splitlines()
        if line.startswith("export ")
    )
    yield Cluster(env=env)
    if was_running != 0:
        subprocess.run([str(CLUSTER_SCRIPT), "down"], timeout=180, check=False)


@pytest.fixture
def prefix() -> str:
    """A topic / group prefix of this test's own."""
    return f"t{uuid.uuid4().hex[:10]}-"


@pytest.fixture
def settings_factory(
    kafka_bootstrap: str, prefix: str, fresh_database_url: str
) -> Callable[..., Settings]:
    """Settings for this test's own stack on the session broker and its own database (empty:
    the log sink, or ``database_settings``, migrates it), with test-friendly defaults."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "kafka_bootstrap": kafka_bootstrap,
            "topic_prefix": prefix,
            "database_url": fresh_database_url,
            "domain_partitions": 3,
            "delivery_partitions": 3,
            "internal_partitions": 1,
            "allowed_networks": "127.0.0.0/8",
            "retry_schedule": "1,2,2",
            "metrics_port": 0,  # several workers per test: only tests of /metrics serve it
        } | overrides
        return Settings(**values)

    return make


@pytest.fixture
def kafka_settings(settings_factory: Callable[..., Settings]) -> Settings:
    """Settings for this test's stack, with every pipeline topic created."""
    settings = settings_factory()
    create_topics(settings)
    return settings


@pytest.fixture
def read_topic(settings_factory: Callable[..., Settings]) -> Callable[..., list[Any]]:
    """``read_topic(topic, count, timeout=30)``: the first ``count`` records of a topic, from the
    beginning, through a throwaway consumer group (raises if fewer arrive in time)."""
    from confluent_kafka import Consumer

    def read(topic: str, count: int, timeout: float = 30.0) -> list[Any]:
        import time

        consumer = Consumer(
            librdkafka_config(
                settings_factory(),
                **{
                    "group.id": f"reader-{uuid.uuid4().hex}",
                    "auto.offset.reset": "earliest",
                    "enable.auto.commit": False,
                },
            )
        )
        consumer.subscribe([topic])
        records: list[Any] = []
        deadline = time.monotonic() + timeout
        try:
            while len(records) < count and time.monotonic() < deadline:
                message = consumer.poll(0.5)
                if message is not None and message.error() is None:
                    records.append(message)
        finally:
            consumer.close()
        assert len(records) >= count, f"{topic}: {len(records)} of {count} records in {timeout}s"
        return records

    return read


# Real HTTP receivers on 127.0.0.1 ----------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1 that records every request; ``respond`` picks the answer
    (``(status, headers)``) from the request and how many came before."""

    respond: Callable[[Received, int], tuple[int, dict[str, str]]]
    requests: list[Received] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/webhooks"

    def wait_for(self, count: int, timeout: float = 60.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.requests) >= count, f"{len(self.requests)} of {count} requests arrived"
        return list(self.requests)


@pytest.fixture
def receiver_factory() -> Iterator[Callable[..., Receiver]]:
    started: list[tuple[ThreadingHTTPServer, threading.Thread]] = []

    def make(
        respond: Callable[[Received, int], tuple[int, dict[str, str]]] = lambda _r, _n: (200, {}),
    ) -> Receiver:
        receiver = Receiver(respond=respond)
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                request = Received(self.path, dict(self.headers.items()), body)
                with lock:
                    status, headers = receiver.respond(request, len(receiver.requests))
                    receiver.requests.append(request)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        receiver.server = server
        started.append((server, thread))
        return receiver

    yield make
    for server, thread in started:
        server.shutdown()
        server.server_close()
        thread.join(5)


# Real worker processes ----------------------------------------------------------------------


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a child process these settings."""
    return settings.as_environment()


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 30.0) -> int:
        return stop_process(self.process, timeout)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)


@pytest.fixture
def worker_factory(tmp_path: Path) -> Iterator[Callable[[Settings], WorkerProcess]]:
    """Start ``velourcity worker`` processes; all are stopped after the test."""
    workers: list[WorkerProcess] = []

    def start(settings: Settings) -> WorkerProcess:
        log_path = tmp_path / f"worker-{len(workers)}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [str(ROOT / ".venv" / "bin" / "velourcity"), "worker"],
                env=settings_env(settings),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=tmp_path,
            )
        worker = WorkerProcess(process, log_path)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def api_factory(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """``api_factory(settings, *args)``: start a ``velourcity api`` process (``args`` such as
    ``--no-relay``); returns its base URL once it answers. All are stopped after the test."""
    import httpx

    processes: list[subprocess.Popen[bytes]] = []

    def start(settings: Settings, *args: str) -> str:
        port = _free_port()
        log_path = tmp_path / f"api-{port}.log"
        with log_path.open("wb") as log:
            processes.append(
                subprocess.Popen(
                    [str(ROOT / ".venv/bin/velourcity"), "api", "--port", str(port), *args],
                    env=settings_env(settings),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/openapi.json", timeout=2).status_code == 200:
                    return base
            except httpx.TransportError:
                pass
            assert processes[-1].poll() is None, log_path.read_text()
            time.sleep(0.3)
        raise AssertionError("the API did not start in 60 s")

    yield start
    for process in processes:
        process.terminate()
        process.wait(20)
