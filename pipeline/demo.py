"""``velourcity demo``: topics, two receivers on 127.0.0.1 (B fails each webhook's first two
tries), their endpoints under a fresh account, a worker subprocess, one event of each type, and
every webhook and attempt-log line printed as it arrives. It stops everything it started.

The account and its endpoints go through the control plane in PostgreSQL and its outbox, as the
API's do (:mod:`pipeline.controlplane.commands`): ``velourcity api`` on the same database lists
them, with the API key the demo prints.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer
from confluent_kafka import Consumer, KafkaException
from confluent_kafka.admin import AdminClient

from pipeline.accounts.model import Account, new_account
from pipeline.cli.deliveries import format_attempt
from pipeline.cli.receiver import format_record, make_server
from pipeline.controlplane import commands
from pipeline.db import migrate
from pipeline.delivery.record import Attempt
from pipeline.endpoints import Endpoint, new_endpoint, new_secret
from pipeline.events import EVENT_TYPES
from pipeline.events.samples import sample_event
from pipeline.exceptions import DatabaseUnavailable, VelourcityError
from pipeline.kafka.connection import librdkafka_config
from pipeline.processes import stop_process
from pipeline.publisher import Publisher
from pipeline.settings import Settings, load_settings
from pipeline.topics import ATTEMPTS, create_topics

__all__ = ["demo"]

# Receiver B fails 12 tries in a row on purpose (two per event): a breaker threshold above
# that keeps the demo about retry tiers, not the circuit breaker's 30 s cooldown.
FORCED = {"allowed_networks": "127.0.0.0/8", "retry_schedule": "2,4,8", "breaker_failures": "50"}
DEFAULT_PREFIX = "demo-"
FAIL_FIRST = 2
RECEIVERS = ("A", "B")
LOG_DIR = Path(".local/demo")
TOTAL = len(RECEIVERS) * len(EVENT_TYPES)
ATTEMPT_HEADER = "x-velourcity-delivery-attempt"

_print_lock = threading.Lock()


def _say(text: str, *, err: bool = False) -> None:
    with _print_lock:
        typer.echo(text, err=err)


@dataclass
class _Tally:
    """What arrived so far, written by the receiver and attempt-log threads."""

    delivered: dict[str, dict[str, int]] = field(default_factory=lambda: {n: {} for n in RECEIVERS})
    """Receiver → webhook id → the attempt answered with 2xx."""
    logged: set[str] = field(default_factory=set)
    """Delivery ids the attempt log shows as delivered."""
    changed: threading.Condition = field(default_factory=threading.Condition)

    def received(self, name: str, record: dict[str, Any]) -> None:
        attempt = {k.lower(): v for k, v in record["headers"].items()}.get(ATTEMPT_HEADER, "")
        if 200 <= record["status"] < 300 and record["webhook_id"]:
            with self.changed:
                self.delivered[name].setdefault(record["webhook_id"], int(attempt or 0))
                self.changed.notify_all()

    def logged_delivery(self, delivery_id: str) -> None:
        with self.changed:
            self.logged.add(delivery_id)
            self.changed.notify_all()

    def all_arrived(self) -> bool:
        return all(len(got) >= len(EVENT_TYPES) for got in self.delivered.values())

    def wait(self, condition: Callable[[], bool], seconds: float) -> bool:
        with self.changed:
            return self.changed.wait_for(condition, seconds)

    def summary(self) -> str:
        parts = [f"{len(got)} at {n} {_tries(got.values())}" for n, got in self.delivered.items()]
        return f"All {TOTAL} deliveries arrived: {', '.join(parts)}."


def _tries(attempts: Iterable[int]) -> str:
    retries = sorted({a - 1 for a in attempts})
    if retries == [0]:
        return "on the first try"
    if len(retries) == 1:
        return f"after {retries[0]} retries each"
    return f"after {retries[0]}-{retries[-1]} retries"


def _start_receiver(name: str, secret: str, tally: _Tally, stack: ExitStack) -> str:
    """Serve receiver ``name`` in a thread; return its webhook URL."""

    def on_request(record: dict[str, Any]) -> None:
        _say(f"{name}    {format_record(record, quiet=True)}")
        tally.received(name, record)

    fail_first = FAIL_FIRST if name == "B" else 0
    server = make_server(
        "127.0.0.1", 0, secrets=[secret], fail_first=fail_first, on_request=on_request
    )
    thread = threading.Thread(target=server.serve_forever, name=f"receiver-{name}", daemon=True)
    thread.start()
    stack.callback(thread.join, 5)
    stack.callback(server.server_close)
    stack.callback(server.shutdown)
    return f"http://127.0.0.1:{server.server_address[1]}/webhooks"


def _tail_attempts(
    settings: Settings, endpoint_ids: set[str], tally: _Tally, stop: threading.Event
) -> None:
    """Print this run's lines of the attempt log, from the beginning, until ``stop``."""
    consumer = Consumer(
        {
            **librdkafka_config(settings),
            "group.id": settings.group(f"demo-tail-{uuid.uuid4().hex}"),
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([settings.topic(ATTEMPTS)])
    try:
        while not stop.is_set():
            message = consumer.poll(0.5)
            if message is None or message.error() is not None:
                continue
            attempt = Attempt.from_bytes(message.value() or b"{}")
            if attempt.endpoint_id in endpoint_ids:
                _say(f"log  {format_attempt(attempt)}")
                if attempt.outcome == "delivered":
                    tally.logged_delivery(attempt.delivery_id)
    finally:
        consumer.close()


def _start_worker(env: dict[str, str], log_path: Path, stack: ExitStack) -> subprocess.Popen[bytes]:
    """Run ``velourcity worker`` (the console script beside this interpreter) into a log file."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603  (our own console script, fixed arguments)
            [str(Path(sys.executable).with_name("velourcity")), "worker"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=log_path.parent,
            start_new_session=True,  # Ctrl-C reaches the demo only; it stops the worker itself
        )
    stack.callback(stop_process, process)
    _say(f"worker started (pid {process.pid}); its log: {log_path}")
    return process


def _on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # stop as on Ctrl-C, so every cleanup runs


def _stopping() -> None:
    """Cleanup is bounded: let a second Ctrl-C not cut it short and orphan the worker."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _say("stopping the worker, the receivers and the log tail ...")


def _fail(message: str) -> typer.Exit:
    _say(f"error: {message}", err=True)
    return typer.Exit(1)


def _check_broker(settings: Settings) -> None:
    try:
        AdminClient(librdkafka_config(settings)).list_topics(timeout=10)
    except KafkaException as exc:
        where = settings.kafka_bootstrap
        raise _fail(f"no Kafka broker answers at {where}: start one with `make kafka`") from exc


def _wait_for_deliveries(
    tally: _Tally, worker: subprocess.Popen[bytes], timeout: float, log_path: Path
) -> None:
    """Block until both receivers got every event, or raise (worker gone, time is up)."""
    deadline = time.monotonic() + timeout
    while not tally.wait(tally.all_arrived, 0.5):
        if worker.poll() is not None:
            raise _fail(f"the worker exited with code {worker.returncode}; see {log_path}")
        if time.monotonic() > deadline:
            got = ", ".join(f"{n} {len(g)}/{len(EVENT_TYPES)}" for n, g in tally.delivered.items())
            raise _fail(f"not all deliveries arrived in {timeout:g}s ({got}); see {log_path}")
    tally.wait(lambda: len(tally.logged) >= TOTAL, 10)  # let the attempt log catch up


def _prepare_database(settings: Settings) -> tuple[Account, str]:
    """Migrate the database and create the demo's account in it; the account and its API key."""
    try:
        migrate(settings)
        account, api_key = new_account("Velourcity demo")
        commands.on_store(settings, lambda store: store.create_account(account))
    except DatabaseUnavailable as exc:
        hint = "start PostgreSQL with `make db` (or name one in VELOURCITY_DATABASE_URL)"
        raise _fail(f"{exc}: {hint}") from exc
    return account, api_key


def _delete_endpoint(settings: Settings, endpoint: Endpoint) -> None:
    try:
        commands.delete_endpoint(settings, endpoint)
    except VelourcityError as exc:
        _say(f"warning: endpoint {endpoint.id} not deleted: {exc}", err=True)


def demo(
    exit_when_done: Annotated[bool, typer.Option("--exit", help="Exit once all arrived.")] = False,
    timeout: Annotated[float, typer.Option(min=1, help="Seconds to wait for them all.")] = 120.0,
    log_dir: Annotated[Path, typer.Option(help="Where the worker log goes.")] = LOG_DIR,
) -> None:
    """Run the pipeline end to end: worker, two receivers, six events, deliveries shown live."""
    settings = load_settings(**FORCED, topic_prefix=load_settings().topic_prefix or DEFAULT_PREFIX)
    env = os.environ | {f"VELOURCITY_{k.upper()}": v for k, v in FORCED.items()}
    env["VELOURCITY_TOPIC_PREFIX"] = settings.topic_prefix
    tally = _Tally()
    log_path = log_dir / "worker.log"
    previous = signal.getsignal(signal.SIGINT), signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        with ExitStack() as stack:
            _say(f"broker {settings.kafka_bootstrap}, topic prefix {settings.topic_prefix!r}")
            _check_broker(settings)
            create_topics(settings)
            created, api_key = _prepare_database(settings)
            account = created.id
            _say(f"account {account} (API key {api_key}: velourcity api lists its endpoints)")
            endpoints: list[Endpoint] = []
            for name in RECEIVERS:
                secret = new_secret()
                url = _start_receiver(name, secret, tally, stack)
                endpoints.append(new_endpoint(settings, account_id=account, url=url, secret=secret))
                answers = f"500 to the first {FAIL_FIRST} tries, then 200" if name == "B" else "200"
                _say(f"receiver {name} on {url} ({answers}): endpoint {endpoints[-1].id}")
            commands.put_endpoints(settings, endpoints)
            for endpoint in endpoints:
                stack.callback(_delete_endpoint, settings, endpoint)
            ids = {endpoint.id for endpoint in endpoints}
            stop = threading.Event()
            tail = threading.Thread(
                target=_tail_attempts, args=(settings, ids, tally, stop), daemon=True
            )
            tail.start()
            stack.callback(tail.join, 10)
            stack.callback(stop.set)
            worker = _start_worker(env, log_path, stack)
            stack.callback(_stopping)
            with Publisher(settings) as publisher:
                for event_type in EVENT_TYPES:
                    event_id = publisher.publish(sample_event(event_type, account)).event_id
                    _say(f"published {event_type:22} {event_id}  account {account}")
            _wait_for_deliveries(tally, worker, timeout, log_path)
            if exit_when_done:
                _say(tally.summary())
                return
            _say(f"{tally.summary()} Ctrl-C to stop (or run with --exit).")
            prefix = f"VELOURCITY_TOPIC_PREFIX={settings.topic_prefix}"
            _say(f"More events: {prefix} velourcity trigger all --account {account}")
            worker.wait()  # a signal (Ctrl-C, SIGTERM) interrupts it
            raise _fail(f"the worker exited with code {worker.returncode}; see {log_path}")
    except KeyboardInterrupt:
        _say("stopped")
        if not tally.all_arrived():
            raise typer.Exit(130) from None
    finally:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])
