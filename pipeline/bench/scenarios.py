"""The benchmark's scenarios. Each builds its own stack (:class:`~pipeline.bench.stack.Stack`),
publishes with the project's publisher, and measures from the receiver's records: latency is
the time from ``Publisher.send`` (the event's ``occurred_at`` is stamped then too) to the
moment the receiver read the ``POST``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.bench.receiver import Record
from pipeline.bench.stack import ReceiverProcess, Stack, cpu_seconds, machine_busy_seconds
from pipeline.events.body import render_body
from pipeline.events.samples import new_event, sample_event
from pipeline.publisher import Publisher

LATENCY_RATES = (100, 500, 1000)
DRAIN_SECONDS = 90.0
"""How long a phase waits, after its load, for the deliveries still on their way."""
BODY_BYTES = 1000
STORM_SECONDS = 60.0
STORM_SCHEDULE = "1,2,4,8,15,30,30,30"
"""Second-scale retry tiers for the retry storm: 8 retries over 120 s, longer than the storm."""


@dataclass
class Options:
    bootstrap: str
    duration: float
    workers: int
    log_dir: Path
    progress: Callable[[str], None] = print
    http_client: str = "aiohttp"
    uvloop: bool = False


def _template(account_id: str) -> dict[str, Any]:
    """An ``order.created`` whose webhook body is about :data:`BODY_BYTES` bytes."""
    event = sample_event("order.created", account_id, rng=random.Random(7))
    event["data"]["special_instructions"] = ""
    padding = BODY_BYTES - len(render_body(event))
    event["data"]["special_instructions"] = "Ring twice. " * (max(padding, 0) // 12)
    return event


class Load:
    """Publishes events through :class:`~pipeline.publisher.Publisher` and remembers when."""

    def __init__(self, stack: Stack) -> None:
        self.publisher = Publisher(stack.settings)
        self.sent: dict[str, float] = {}
        self._templates: dict[str, dict[str, Any]] = {}
        self._count = 0

    def send(self, account_id: str) -> str:
        template = self._templates.get(account_id) or self._templates.setdefault(
            account_id, _template(account_id)
        )
        self._count += 1
        data = dict(template["data"], order_id=f"ord_bench{self._count:09d}")
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


def drive(
    stack: Stack,
    receiver: ReceiverProcess,
    load: Load,
    mix: Mix,
    *,
    seconds: float,
    rate: float | None,
    backlog: int = 5000,
) -> Phase:
    """Publish for ``seconds``: at ``rate`` events/s, or as fast as the pipeline takes them
    (``None``: keep at most ``backlog`` recorded deliveries outstanding). CPU and the
    throughput window skip the first fifth (warm-up), at most 3 s."""
    published = dict.fromkeys(mix.weights, 0)
    base = receiver.received()
    started = time.time()
    warm = started + min(3.0, seconds / 5)
    end = started + seconds
    cpu_start: float | None = None
    others_start = (0.0, 0.0)
    received, checked = base, 0.0
    while (now := time.time()) < end:
        if cpu_start is None and now >= warm:
            cpu_start = stack.cpu_seconds()
            others_start = (cpu_seconds(receiver.process.pid), machine_busy_seconds())
        if rate is not None:
            due = int(rate * (now - started)) - sum(published.values())
        else:
            if now - checked > 0.05:
                received, checked = receiver.received(), now
            due = 200 if mix.expected(published) - (received - base) < backlog else 0
        if due <= 0:
            time.sleep(0.002)
            continue
        for _ in range(due):
            account = mix.pick()
            load.send(account)
            published[account] += 1
    cpu = stack.cpu_seconds() - (cpu_start if cpu_start is not None else 0.0)
    receiver_cpu = cpu_seconds(receiver.process.pid) - others_start[0]
    machine_cpu = machine_busy_seconds() - others_start[1]
    stack.check_alive()
    return Phase(started, end, published, cpu, (warm, end), receiver_cpu, machine_cpu, base)


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
    return {
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


def _warm_up(stack: Stack, receiver: ReceiverProcess, load: Load, accounts: list[str]) -> None:
    """Wait until each account's events get through end to end (the workers joined their
    groups and read the endpoints): the first seconds of a worker are not measured."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        base = receiver.received()
        for account in accounts:
            load.send(account)
        load.publisher.flush(30)
        if wait_delivered(receiver, len(accounts), 5, base):
            return
        stack.check_alive()
    raise RuntimeError("the workers delivered nothing within 120 s; see their logs")


def _run(
    options: Options,
    name: str,
    setup: Callable[[Stack, ReceiverProcess], tuple[Mix, list[str]]],
    body: Callable[[Stack, ReceiverProcess, Load, Mix], dict[str, Any]],
    **settings: Any,
) -> dict[str, Any]:
    log_dir = options.log_dir / name
    stack = Stack.create(options.bootstrap, log_dir, http_client=options.http_client, **settings)
    receiver = ReceiverProcess(log_dir / "receiver.log")
    load: Load | None = None
    try:
        mix, warm_accounts = setup(stack, receiver)
        stack.start_workers(options.workers, options.uvloop)
        load = Load(stack)
        _warm_up(stack, receiver, load, warm_accounts)
        options.progress(f"{name}: workers ready, measuring")
        result = body(stack, receiver, load, mix)
        result["scenario"] = name
        result["workers"] = options.workers
        result["http_client"] = options.http_client
        result["worker_event_loop"] = "uvloop" if options.uvloop else "asyncio"
        result["duration_s"] = options.duration
        return result
    finally:
        if load is not None:
            load.close()
        stack.close()
        receiver.stop()


def _finish(
    receiver: ReceiverProcess, load: Load, mix: Mix, phase: Phase, stack: Stack, **kw: Any
) -> dict[str, Any]:
    load.publisher.flush(60)
    expected = mix.expected(phase.published)
    wait_delivered(receiver, expected, DRAIN_SECONDS, base=phase.received_before)
    result = measure(load, receiver.collect(), phase, stack, **kw)
    # still on their way when measured: the percentiles leave out these (the slowest)
    result["undelivered"] = max(0, expected - result["deliveries"])
    return result


def throughput(options: Options) -> dict[str, Any]:
    """One endpoint, ~1 KB events, as fast as the pipeline takes them."""

    def setup(stack: Stack, receiver: ReceiverProcess) -> tuple[Mix, list[str]]:
        stack.endpoint("acct_tp", receiver.url("ok", "tp"))
        return Mix({"acct_tp": 1.0}, {"acct_tp": 1}), ["acct_tp"]

    def body(stack: Stack, receiver: ReceiverProcess, load: Load, mix: Mix) -> dict[str, Any]:
        phase = drive(stack, receiver, load, mix, seconds=options.duration, rate=None)
        return _finish(receiver, load, mix, phase, stack) | {"offered_rate": "max"}

    return _run(options, "throughput", setup, body)


def fanout(options: Options, endpoints: int = 10) -> dict[str, Any]:
    """Each event to ``endpoints`` endpoints of one account, as fast as it goes."""

    def setup(stack: Stack, receiver: ReceiverProcess) -> tuple[Mix, list[str]]:
        for n in range(endpoints):
            stack.endpoint("acct_fan", receiver.url("ok", f"fan{n}"))
        return Mix({"acct_fan": 1.0}, {"acct_fan": endpoints}), ["acct_fan"]

    def body(stack: Stack, receiver: ReceiverProcess, load: Load, mix: Mix) -> dict[str, Any]:
        phase = drive(
            stack, receiver, load, mix, seconds=options.duration, rate=None, backlog=10000
        )
        result = _finish(receiver, load, mix, phase, stack)
        result["events_per_second"] = round(result["deliveries_per_second"] / endpoints, 1)
        return result | {"offered_rate": "max", "endpoints": endpoints}

    return _run(options, "fanout", setup, body)


def latency(options: Options, rates: Sequence[int] = LATENCY_RATES) -> dict[str, Any]:
    """Fixed offered rates, one after the other on the same workers; p50/p95/p99 each."""

    def setup(stack: Stack, receiver: ReceiverProcess) -> tuple[Mix, list[str]]:
        stack.endpoint("acct_lat", receiver.url("ok", "lat"))
        return Mix({"acct_lat": 1.0}, {"acct_lat": 1}), ["acct_lat"]

    def body(stack: Stack, receiver: ReceiverProcess, load: Load, mix: Mix) -> dict[str, Any]:
        by_rate: dict[str, dict[str, Any]] = {}
        for rate in rates:
            phase = drive(stack, receiver, load, mix, seconds=options.duration, rate=rate)
            by_rate[str(rate)] = _finish(receiver, load, mix, phase, stack) | {"offered_rate": rate}
        headline = by_rate.get("500") or next(iter(by_rate.values()))
        return dict(headline) | {"offered_rate": list(rates), "rates": by_rate}

    return _run(options, "latency", setup, body)


def noisy_neighbor(options: Options, share: float = 0.2) -> dict[str, Any]:
    """``share`` of the events go to an endpoint that reads requests and never answers. The
    healthy endpoint's throughput (as fast as it goes) and its p99 at 500 events/s are what
    count, beside scenarios 1 and 3."""

    def setup(stack: Stack, receiver: ReceiverProcess) -> tuple[Mix, list[str]]:
        stack.endpoint("acct_ok", receiver.url("ok", "healthy"))
        stack.endpoint("acct_noisy", receiver.url("hang", "noisy"))
        mix = Mix({"acct_ok": 1 - share, "acct_noisy": share}, {"acct_ok": 1, "acct_noisy": 0})
        return mix, ["acct_ok"]

    def body(stack: Stack, receiver: ReceiverProcess, load: Load, mix: Mix) -> dict[str, Any]:
        healthy = {"healthy"}
        phase = drive(stack, receiver, load, mix, seconds=options.duration, rate=None)
        at_max = _finish(receiver, load, mix, phase, stack, tags=healthy)
        phase = drive(stack, receiver, load, mix, seconds=options.duration, rate=500)
        at_500 = _finish(receiver, load, mix, phase, stack, tags=healthy)
        return at_max | {
            "offered_rate": "max",
            "hanging_share": share,
            "at_500": at_500 | {"offered_rate": 500},
        }

    return _run(options, "noisy-neighbor", setup, body)


def retry_storm(options: Options, rate: int = 200) -> dict[str, Any]:
    """The endpoint answers 500 to everything for a while (60 s, or twice ``--duration`` when
    that is shorter), then 200; events keep coming at ``rate``/s throughout and a little past.
    Reports how long after the recovery every event was delivered (the backlog drained)."""
    storm = min(STORM_SECONDS, 2 * options.duration)
    tail = min(10.0, options.duration)
    recover_at: list[float] = []

    def setup(stack: Stack, receiver: ReceiverProcess) -> tuple[Mix, list[str]]:
        stack.endpoint("acct_warm", receiver.url("ok", "warm"))
        return Mix({"acct_storm": 1.0}, {"acct_storm": 1}), ["acct_warm"]

    def body(stack: Stack, receiver: ReceiverProcess, load: Load, mix: Mix) -> dict[str, Any]:
        recover_at.append(time.time() + 3 + storm)
        url = receiver.url("fail-until", f"{int(recover_at[0] * 1000)}/storm")
        stack.endpoint("acct_storm", url)
        time.sleep(3)  # every worker's endpoint cache has it
        phase = drive(stack, receiver, load, mix, seconds=storm + tail, rate=rate)
        load.publisher.flush(60)
        published = set(load.sent) - {e for e, s in load.sent.items() if s < phase.started}
        limit = time.time() + sum(float(d) for d in STORM_SCHEDULE.split(",")) + 30
        delivered: dict[str, float] = {}
        attempts = 0
        while time.time() < limit:
            records = receiver.collect()
            attempts = sum(1 for e, tag, _ in records if tag == "storm" and e in published)
            delivered = {
                e: at
                for e, tag, at in records
                if tag == "storm" and at >= recover_at[0] and e in published and e not in delivered
            } | delivered
            if len(delivered) >= len(published):
                break
            time.sleep(0.5)
        stack.check_alive()
        last = max(delivered.values(), default=recover_at[0])
        latencies = [(at - load.sent[e]) * 1000 for e, at in delivered.items()]
        return {
            "p50_ms": round(percentile(latencies, 50), 1),
            "p95_ms": round(percentile(latencies, 95), 1),
            "p99_ms": round(percentile(latencies, 99), 1),
            "offered_rate": rate,
            "storm_seconds": storm,
            "retry_schedule": STORM_SCHEDULE,
            "events_published": len(published),
            "deliveries": len(delivered),
            "undelivered": len(published) - len(delivered),
            "attempts": attempts,
            "drain_seconds": round(last - recover_at[0], 1),
            "deliveries_per_second": round(len(delivered) / max(last - phase.started, 1e-9), 1),
            "cpu_ms_per_delivery": round(stack.cpu_seconds() * 1000 / max(len(delivered), 1), 3),
            "peak_rss_mb": round(stack.peak_rss_mb(), 1),
        }

    return _run(
        options,
        "retry-storm",
        setup,
        body,
        retry_schedule=STORM_SCHEDULE,
        breaker_cooldown=5.0,
    )


SCENARIOS: dict[str, Callable[[Options], dict[str, Any]]] = {
    "throughput": throughput,
    "fanout": fanout,
    "latency": latency,
    "noisy-neighbor": noisy_neighbor,
    "retry-storm": retry_storm,
}
