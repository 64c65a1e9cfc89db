"""The benchmark's scenarios. Each builds its own stack (:class:`~velourcity_bench.stack.Stack`),
loads it (:mod:`velourcity_bench.load`) and measures from the receiver's records: latency is the
time from the moment an event is handed to the producer to the moment the receiver read the
``POST``. The latency scenario gives every rate a fresh stack (an empty backlog) and paced
load from a generator in its own process (:mod:`velourcity_bench.loadgen`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.kafka.connection import librdkafka_config
from pipeline.topics import DELIVERIES
from velourcity_bench.load import (
    Load,
    Mix,
    Phase,
    drive,
    measure,
    paced,
    percentile,
    wait_delivered,
)
from velourcity_bench.profile import Profiler
from velourcity_bench.stack import ReceiverProcess, Stack

LATENCY_RATES = (100, 500, 1000, 2000)
DRAIN_SECONDS = 90.0
"""How long a phase waits, after its load, for the deliveries still on their way."""
WARM_EVENTS = 200
"""Events sent through a fresh stack before it is measured (connections opened, code warm)."""
FANOUT_ALONE_EVENTS_PER_SECOND = 4000
"""The fan-out-alone backlog is this many events per second of ``--duration``."""
SENDER_ALONE_DELIVERIES_PER_SECOND = 3000
"""The sender-alone backlog is this many deliveries per second of ``--duration``."""
ENCODE_SECONDS = 0.0001
"""About how long the generator takes to validate and encode one event."""
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
    event_loop: str = "uvloop"
    profiler: Profiler | None = None
    latency_rates: Sequence[int] = LATENCY_RATES
    otlp_endpoint: str | None = None
    """Where the stack exports spans (``--tracing``); None: tracing off."""

    def stack(self, log_dir: Path, **settings: Any) -> Stack:
        """A fresh stack with the workers' HTTP client, event loop and tracing of this run."""
        return Stack.create(
            self.bootstrap,
            log_dir,
            http_client=self.http_client,
            event_loop=self.event_loop,
            otlp_endpoint=self.otlp_endpoint,
            **settings,
        )

    def on_measure(self, stack: Stack, label: str) -> Callable[[float], None] | None:
        """The hook that starts py-spy on the stack's workers when a window opens."""
        profiler = self.profiler
        if profiler is None or not profiler.wants(label.split("@")[0]):
            return None
        return lambda seconds: profiler.start(stack, label.replace("@", "-"), seconds)


Body = Callable[[Stack, ReceiverProcess, Load, Mix], dict[str, Any]]
Setup = Callable[[Stack, ReceiverProcess], tuple[Mix, list[str]]]


def _warm_up(stack: Stack, receiver: ReceiverProcess, load: Load, accounts: list[str]) -> None:
    """Wait until each account's events get through end to end and every worker is in its
    groups, then send :data:`WARM_EVENTS` more and wait for them: the first seconds of a
    worker (joining, opening connections) are not measured."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        base = receiver.received()
        for account in accounts:
            load.send(account)
        load.publisher.flush(30)
        if wait_delivered(receiver, len(accounts), 5, base):
            break
        stack.check_alive()
    else:
        raise RuntimeError("the workers delivered nothing within 120 s; see their logs")
    stack.wait_groups_stable()
    base = receiver.received()
    for n in range(WARM_EVENTS):
        load.send(accounts[n % len(accounts)])
    load.publisher.flush(30)
    wait_delivered(receiver, WARM_EVENTS, 60, base)


def _run(options: Options, name: str, setup: Setup, body: Body, **settings: Any) -> dict[str, Any]:
    log_dir = options.log_dir / name
    stack = options.stack(log_dir, **settings)
    receiver = ReceiverProcess(log_dir / "receiver.log")
    load: Load | None = None
    try:
        mix, warm_accounts = setup(stack, receiver)
        stack.start_workers(options.workers)
        load = Load(stack)
        _warm_up(stack, receiver, load, warm_accounts)
        options.progress(f"{name}: {options.workers} worker(s) ready, measuring")
        result = body(stack, receiver, load, mix)
        return result | _about(options, name)
    finally:
        if load is not None:
            load.close()
        if options.profiler is not None:
            options.profiler.finish()
        stack.close()
        receiver.stop()


def _about(options: Options, name: str) -> dict[str, Any]:
    return {
        "scenario": name,
        "workers": options.workers,
        "http_client": options.http_client,
        "worker_event_loop": options.event_loop,
        "tracing": options.otlp_endpoint is not None,
        "duration_s": options.duration,
    }


def _finish(
    receiver: ReceiverProcess,
    load: Load,
    mix: Mix,
    phase: Phase,
    stack: Stack,
    *,
    drain: float = DRAIN_SECONDS,
    **kw: Any,
) -> dict[str, Any]:
    load.publisher.flush(60)
    expected = mix.expected(phase.published)
    wait_delivered(receiver, expected, drain, base=phase.received_before)
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
        hook = options.on_measure(stack, "throughput")
        phase = drive(stack, receiver, load, mix, seconds=options.duration, on_measure=hook)
        return _finish(receiver, load, mix, phase, stack) | {"offered_rate": "max"}

    return _run(options, "throughput", setup, body)


def fanout(options: Options, endpoints: int = 10) -> dict[str, Any]:
    """Each event to ``endpoints`` endpoints of one account, as fast as it goes (end to end)."""

    def setup(stack: Stack, receiver: ReceiverProcess) -> tuple[Mix, list[str]]:
        for n in range(endpoints):
            stack.endpoint("acct_fan", receiver.url("ok", f"fan{n}"))
        return Mix({"acct_fan": 1.0}, {"acct_fan": endpoints}), ["acct_fan"]

    def body(stack: Stack, receiver: ReceiverProcess, load: Load, mix: Mix) -> dict[str, Any]:
        hook = options.on_measure(stack, "fanout")
        phase = drive(
            stack, receiver, load, mix, seconds=options.duration, backlog=10000, on_measure=hook
        )
        result = _finish(receiver, load, mix, phase, stack)
        result["events_per_second"] = round(result["deliveries_per_second"] / endpoints, 1)
        return result | {"offered_rate": "max", "endpoints": endpoints}

    return _run(options, "fanout", setup, body)


def fanout_alone(options: Options, endpoints: int = 1) -> dict[str, Any]:
    """The fan-out with no sender (``worker_role=fanout``): a backlog of events is published
    first, then the workers start; the rate is events the deliveries topic received (its high
    watermarks) over the time from its first record to the last."""
    events = max(1000, round(FANOUT_ALONE_EVENTS_PER_SECOND * options.duration))
    log_dir = options.log_dir / "fanout-alone"
    stack = options.stack(log_dir, worker_role="fanout")
    receiver = ReceiverProcess(log_dir / "receiver.log")  # never called: nothing sends
    try:
        for n in range(endpoints):
            stack.endpoint("acct_fo", receiver.url("ok", f"fo{n}"))
        load = Load(stack)
        options.progress(f"fanout-alone: publishing {events:,} events first")
        for _ in range(events):
            load.send("acct_fo")
        load.close()
        result = _watch_fanout(options, stack, events * endpoints)
        return (
            result
            | _about(options, "fanout-alone")
            | {
                "offered_rate": "backlog",
                "endpoints": endpoints,
                "events_published": events,
            }
        )
    finally:
        if options.profiler is not None:
            options.profiler.finish()
        stack.close()
        receiver.stop()


def sender_alone(options: Options) -> dict[str, Any]:
    """The sender with no fan-out beside it (``worker_role=sender``): a backlog of deliveries
    is written first by a fan-out-only worker, which then stops; the sender-only workers start
    on it. The rate is deliveries the receiver read over the time from its first to its last;
    the CPU is the sender workers' alone, so it compares with one HTTP request's."""
    deliveries = max(1000, round(SENDER_ALONE_DELIVERIES_PER_SECOND * options.duration))
    log_dir = options.log_dir / "sender-alone"
    stack = options.stack(log_dir, worker_role="fanout")
    receiver = ReceiverProcess(log_dir / "receiver.log")
    try:
        stack.endpoint("acct_so", receiver.url("ok", "so"))
        load = Load(stack)
        options.progress(f"sender-alone: writing a backlog of {deliveries:,} deliveries first")
        for _ in range(deliveries):
            load.send("acct_so")
        load.close()
        stack.start_workers(1)
        deadline = time.monotonic() + 120 + deliveries / 500
        while stack.records_in([stack.settings.topic(DELIVERIES)]) < deliveries:
            if time.monotonic() > deadline:
                raise RuntimeError("the fan-out did not write the sender-alone backlog in time")
            stack.check_alive()
            time.sleep(0.2)
        stack.stop_workers()
        stack.settings = stack.settings.model_copy(update={"worker_role": "sender"})
        result = _watch_sender(options, stack, receiver, deliveries)
        return (
            result
            | _about(options, "sender-alone")
            | {"offered_rate": "backlog", "deliveries_backlog": deliveries}
        )
    finally:
        if options.profiler is not None:
            options.profiler.finish()
        stack.close()
        receiver.stop()


def _watch_sender(
    options: Options, stack: Stack, receiver: ReceiverProcess, expected: int
) -> dict[str, Any]:
    launched = time.time()
    stack.start_workers(options.workers)
    deadline = time.monotonic() + 120 + expected / 200
    first: tuple[float, int, float] | None = None
    received = 0
    while time.monotonic() < deadline:
        received, now = receiver.received(), time.time()
        if first is None and received > 0:
            first = (now, received, stack.cpu_seconds())
            options.progress("sender-alone: the sender started, measuring")
            if (hook := options.on_measure(stack, "sender-alone")) is not None:
                hook(options.duration)
        if received >= expected:
            break
        stack.check_alive()
        time.sleep(0.05)
    cpu = stack.cpu_seconds()
    if first is None or received < expected:
        raise RuntimeError(f"the sender delivered {received:,} of {expected:,} in time")
    started, before, cpu_before = first
    span = max(now - started, 1e-9)
    carried = received - before
    return {
        "deliveries": received,
        "deliveries_per_second": round(carried / span, 1),
        "cpu_ms_per_delivery": round((cpu - cpu_before) * 1000 / max(carried, 1), 3),
        "worker_cpu_cores": round((cpu - cpu_before) / span, 2),
        "seconds": round(span, 2),
        "startup_seconds": round(started - launched, 1),
        "deferred_to_retry": stack.retry_records(),
        "peak_rss_mb": round(stack.peak_rss_mb(), 1),
    }


def _watch_fanout(options: Options, stack: Stack, expected: int) -> dict[str, Any]:
    from confluent_kafka import Consumer

    topic = [stack.settings.topic(DELIVERIES)]
    consumer = Consumer({**librdkafka_config(stack.settings), "group.id": "bench-marks"})
    try:
        launched = time.time()
        stack.start_workers(options.workers)
        deadline = time.monotonic() + 120 + expected / 200
        first: tuple[float, int, float] | None = None
        profiled = False
        written = 0
        while time.monotonic() < deadline:
            written, now = stack.records_in(topic, consumer), time.time()
            if first is None and written > 0:
                first = (now, written, stack.cpu_seconds())
                options.progress("fanout-alone: the fan-out started, measuring")
            if first is not None and not profiled:
                hook = options.on_measure(stack, "fanout-alone")
                if hook is not None:  # the whole run, at the rate the last run took
                    hook(options.duration)
                profiled = True
            if written >= expected:
                break
            stack.check_alive()
            time.sleep(0.05)
        cpu = stack.cpu_seconds()
    finally:
        consumer.close()
    if first is None or written < expected:
        raise RuntimeError(f"the fan-out wrote {written:,} of {expected:,} deliveries in time")
    started, before, cpu_before = first
    span = max(now - started, 1e-9)
    carried = written - before
    return {
        "deliveries": written,
        "events_per_second": round(carried / span, 1),
        "deliveries_per_second": round(carried / span, 1),
        "cpu_ms_per_event": round((cpu - cpu_before) * 1000 / max(carried, 1), 3),
        "worker_cpu_cores": round((cpu - cpu_before) / span, 2),
        "seconds": round(span, 2),
        "startup_seconds": round(started - launched, 1),
        "peak_rss_mb": round(stack.peak_rss_mb(), 1),
    }


def latency(options: Options) -> dict[str, Any]:
    """Fixed offered rates, each on a fresh stack (an empty backlog, workers warmed up) with
    paced load from the generator's own process; p50/p95/p99 at each."""
    rates = list(options.latency_rates)

    def setup(stack: Stack, receiver: ReceiverProcess) -> tuple[Mix, list[str]]:
        stack.endpoint("acct_lat", receiver.url("ok", "lat"))
        return Mix({"acct_lat": 1.0}, {"acct_lat": 1}), ["acct_lat"]

    by_rate: dict[str, dict[str, Any]] = {}
    for rate in rates:

        def body(
            stack: Stack, receiver: ReceiverProcess, load: Load, mix: Mix, rate: int = rate
        ) -> dict[str, Any]:
            hook = options.on_measure(stack, f"latency@{rate}")
            phase = paced(
                stack, receiver, load, mix, seconds=options.duration, rate=rate, on_measure=hook
            )
            # an overloaded rate's backlog would take minutes: what is late by then is counted
            drain = min(DRAIN_SECONDS, 30 + 2 * options.duration)
            return _finish(receiver, load, mix, phase, stack, drain=drain)

        by_rate[str(rate)] = _run(options, f"latency-{rate}", setup, body) | {"offered_rate": rate}
    headline = by_rate.get("500") or next(iter(by_rate.values()))
    return (
        dict(headline)
        | _about(options, "latency")
        | {
            "offered_rate": rates,
            "rates": by_rate,
            "peak_rss_mb": max(r["peak_rss_mb"] for r in by_rate.values()),
        }
    )


def noisy_neighbor(options: Options, share: float = 0.2) -> dict[str, Any]:
    """``share`` of the events go to an endpoint that reads requests and never answers. The
    healthy endpoint's throughput (as fast as it goes) and its p99 at 500 events/s are what
    count, beside the throughput and latency scenarios."""

    def setup(stack: Stack, receiver: ReceiverProcess) -> tuple[Mix, list[str]]:
        stack.endpoint("acct_ok", receiver.url("ok", "healthy"))
        stack.endpoint("acct_noisy", receiver.url("hang", "noisy"))
        mix = Mix({"acct_ok": 1 - share, "acct_noisy": share}, {"acct_ok": 1, "acct_noisy": 0})
        return mix, ["acct_ok"]

    def body(stack: Stack, receiver: ReceiverProcess, load: Load, mix: Mix) -> dict[str, Any]:
        healthy = {"healthy"}
        hook = options.on_measure(stack, "noisy-neighbor")
        phase = drive(stack, receiver, load, mix, seconds=options.duration, on_measure=hook)
        at_max = _finish(receiver, load, mix, phase, stack, tags=healthy)
        phase = paced(stack, receiver, load, mix, seconds=options.duration, rate=500)
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
        # the generator starts and encodes its events first (~0.1 ms each): the load starts
        # after that, and the storm's length is measured from there
        encoding = 1.0 + rate * (storm + tail) * ENCODE_SECONDS
        recover_at.append(time.time() + 3 + encoding + storm)
        url = receiver.url("fail-until", f"{int(recover_at[0] * 1000)}/storm")
        stack.endpoint("acct_storm", url)
        time.sleep(3)  # every worker's endpoint cache has it
        hook = options.on_measure(stack, "retry-storm")
        phase = paced(stack, receiver, load, mix, seconds=storm + tail, rate=rate, on_measure=hook)
        published = {e for e, s in load.sent.items() if phase.started <= s <= phase.ended}
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
            "storm_seconds": round(recover_at[0] - phase.started, 1),
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
    "fanout-alone": fanout_alone,
    "sender-alone": sender_alone,
    "latency": latency,
    "noisy-neighbor": noisy_neighbor,
    "retry-storm": retry_storm,
}
