"""How the benchmark loads a stack and reads the result: the events' accounts (:class:`Mix`),
phases of load (:func:`drive` as fast as the pipeline takes them, :func:`paced` at a fixed
rate from the generator's own process), and the figures of a phase (:func:`measure`).

Latency is the time from the moment an event is handed to the producer to the moment the
receiver read its ``POST``.
"""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from pipeline.events.samples import new_event
from pipeline.publisher import Publisher
from velourcity_bench.loadgen import template
from velourcity_bench.receiver import Record
from velourcity_bench.stack import ReceiverProcess, Stack, cpu_seconds, machine_busy_seconds

WARM_FRACTION = 0.2
WARM_MAX_SECONDS = 3.0
"""CPU and the throughput window skip the first fifth of a phase, at most 3 s."""


class Load:
    """Publishes events through :class:`~pipeline.publisher.Publisher` and remembers when;
    the paced generator's send times join :attr:`sent` too."""

    def __init__(self, stack: Stack) -> None:
        self.publisher = Publisher(stack.settings)
        self.sent: dict[str, float] = {}
        self._templates: dict[str, dict[str, Any]] = {}
        self._count = 0
        self.phases = 0

    def send(self, account_id: str) -> str:
        template_event = self._templates.get(account_id) or self._templates.setdefault(
            account_id, template(account_id)
        )
        self._count += 1
        data = dict(template_event["data"], order_id=f"ord_bench{self._count:09d}")
        now = time.time()
        event = new_event("order.created", account_id, data)
        self.sent[event["id"]] = now
        self.publisher.send(event)
        return str(event["id"])

    def close(self) -> None:
        self.publisher.flush(60)


@dataclass
class Mix:
    """Which account each event goes to: ``weights`` per account, and how many deliveries an
    event of it makes that the receiver records (a hanging endpoint's make none)."""

    weights: dict[str, float]
    recorded: dict[str, int]
    _rng: random.Random = field(default_factory=lambda: random.Random(11))

    def pick(self) -> str:
        accounts = list(self.weights)
        return self._rng.choices(accounts, weights=[self.weights[a] for a in accounts])[0]

    def expected(self, published: dict[str, int]) -> int:
        return sum(self.recorded[a] * n for a, n in published.items())


@dataclass
class Phase:
    """What one stretch of load did: when, how much, and the workers' CPU over it."""

    started: float
    ended: float
    published: dict[str, int]
    cpu_seconds: float
    window: tuple[float, float]
    receiver_cpu_seconds: float = 0.0
    machine_cpu_seconds: float = 0.0
    received_before: int = 0
    """What the receiver had recorded when the phase began (earlier phases, warm-up)."""
    generator: dict[str, Any] = field(default_factory=dict)
    """The paced generator's summary: its CPU, how late its sends were against the schedule."""


@dataclass
class _Window:
    """CPU counters read when the measured window opens (after the warm-up part)."""

    stack: Stack
    receiver: ReceiverProcess
    on_measure: Callable[[float], None] | None = None
    cpu: float | None = None
    receiver_cpu: float = 0.0
    machine: float = 0.0

    def open(self, seconds_left: float) -> None:
        self.cpu = self.stack.cpu_seconds()
        self.receiver_cpu = cpu_seconds(self.receiver.process.pid)
        self.machine = machine_busy_seconds()
        if self.on_measure is not None:
            self.on_measure(seconds_left)

    def phase(self, started: float, ended: float, warm: float, **kw: Any) -> Phase:
        self.stack.check_alive()
        return Phase(
            started,
            ended,
            cpu_seconds=self.stack.cpu_seconds() - (self.cpu or 0.0),
            window=(warm, ended),
            receiver_cpu_seconds=cpu_seconds(self.receiver.process.pid) - self.receiver_cpu,
            machine_cpu_seconds=machine_busy_seconds() - self.machine,
            **kw,
        )


def warm_seconds(seconds: float) -> float:
    return min(WARM_MAX_SECONDS, seconds * WARM_FRACTION)


def drive(
    stack: Stack,
    receiver: ReceiverProcess,
    load: Load,
    mix: Mix,
    *,
    seconds: float,
    backlog: int = 5000,
    on_measure: Callable[[float], None] | None = None,
) -> Phase:
    """Publish for ``seconds`` as fast as the pipeline takes them: at most ``backlog``
    recorded deliveries outstanding. ``on_measure(seconds_left)`` is called when the
    measured window opens (the profiler starts then)."""
    published = dict.fromkeys(mix.weights, 0)
    base = receiver.received()
    window = _Window(stack, receiver, on_measure)
    started = time.time()
    warm = started + warm_seconds(seconds)
    end = started + seconds
    received, checked = base, 0.0
    while (now := time.time()) < end:
        if window.cpu is None and now >= warm:
            window.open(end - now)
        if now - checked > 0.05:
            received, checked = receiver.received(), now
        if mix.expected(published) - (received - base) >= backlog:
            time.sleep(0.002)
            continue
        for _ in range(200):
            account = mix.pick()
            load.send(account)
            published[account] += 1
    return window.phase(started, end, warm, published=published, received_before=base)


def paced(
    stack: Stack,
    receiver: ReceiverProcess,
    load: Load,
    mix: Mix,
    *,
    seconds: float,
    rate: float,
    on_measure: Callable[[float], None] | None = None,
) -> Phase:
    """Publish at ``rate`` events/s for ``seconds`` from the paced generator's own process
    (:mod:`velourcity_bench.loadgen`: events encoded beforehand, each handed to the producer at
    its time); its send times join ``load.sent``."""
    load.phases += 1
    tag = f"{load.phases}"
    out = stack.log_dir / f"sends-{tag}.jsonl"
    weights = ",".join(f"{account}={w}" for account, w in mix.weights.items())
    with (stack.log_dir / f"loadgen-{tag}.log").open("wb") as log:
        generator = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
            [
                sys.executable,
                "-m",
                "velourcity_bench.loadgen",
                "--rate",
                str(rate),
                "--seconds",
                str(seconds),
                "--mix",
                weights,
                "--out",
                str(out),
                "--seed",
                tag,
                "--prefix",
                f"p{tag}x",
            ],
            env=stack.settings.as_environment(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
        )
    assert generator.stdin is not None and generator.stdout is not None
    try:
        if generator.stdout.readline().strip() != b"ready":
            raise RuntimeError(f"the load generator did not start; see {log.name}")
        base = receiver.received()
        window = _Window(stack, receiver, on_measure)
        warm_after = warm_seconds(seconds)
        timer = threading.Timer(warm_after, window.open, (seconds - warm_after,))
        generator.stdin.write(b"go\n")
        generator.stdin.flush()
        timer.start()
        summary = orjson.loads(generator.stdout.readline() or b"{}")
        timer.join()
        generator.wait(60)
    finally:
        if generator.poll() is None:
            generator.kill()
            generator.wait(10)
    if not summary:
        raise RuntimeError(f"the load generator failed; see {log.name}")
    for line in out.read_bytes().splitlines():
        event_id, _, at = orjson.loads(line)
        load.sent[event_id] = at
    started, ended = float(summary["started"]), float(summary["ended"])
    return window.phase(
        started,
        ended,
        started + warm_after,
        published=summary["published"],
        received_before=base,
        generator=summary,
    )


def wait_delivered(receiver: ReceiverProcess, expected: int, timeout: float, base: int = 0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if receiver.received() - base >= expected:
            return True
        time.sleep(0.1)
    return False


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def measure(
    load: Load,
    records: list[Record],
    phase: Phase,
    stack: Stack,
    *,
    tags: set[str] | None = None,
) -> dict[str, Any]:
    """Figures for one phase: first receipts of its events (``tags``: only those endpoints)."""
    first: dict[tuple[str, str], float] = {}
    duplicates = 0
    for event_id, tag, at in records:
        sent = load.sent.get(event_id)
        if sent is None or not phase.started <= sent <= phase.ended:
            continue
        if tags is not None and tag not in tags:
            continue
        if (event_id, tag) in first:
            duplicates += 1
            continue
        first[(event_id, tag)] = at
    latencies = [(at - load.sent[event_id]) * 1000 for (event_id, _), at in first.items()]
    low, high = phase.window
    in_window = sum(1 for at in first.values() if low <= at <= high)
    span = max(high - low, 1e-9)
    result: dict[str, Any] = {
        "events_published": sum(phase.published.values()),
        "deliveries": len(first),
        "duplicates": duplicates,
        "deliveries_per_second": round(in_window / span, 1),
        "p50_ms": round(percentile(latencies, 50), 1),
        "p95_ms": round(percentile(latencies, 95), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "max_ms": round(max(latencies, default=0.0), 1),
        "cpu_ms_per_delivery": round(phase.cpu_seconds * 1000 / max(in_window, 1), 3),
        "worker_cpu_cores": round(phase.cpu_seconds / span, 2),
        "receiver_cpu_cores": round(phase.receiver_cpu_seconds / span, 2),
        "machine_cpu_cores_busy": round(phase.machine_cpu_seconds / span, 2),
        "peak_rss_mb": round(stack.peak_rss_mb(), 1),
        "retry_tier_records": stack.retry_records(),
    }
    if phase.generator:
        generator = phase.generator
        result["generator"] = {
            "cpu_cores": round(
                float(generator["cpu_seconds"]) / max(phase.ended - phase.started, 1e-9), 3
            ),
            "late_p99_ms": generator["late_p99_ms"],
            "late_max_ms": generator["late_max_ms"],
        }
    return result
