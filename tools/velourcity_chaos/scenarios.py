"""The fault scenarios. Each publishes events through the SDK while a fault is injected, then
waits for every (event, endpoint) pair the broker acknowledged to reach the accounting
receiver, and returns a :class:`~velourcity_chaos.report.Tally`.

Targets checked for every scenario: nothing lost, nothing dead-lettered (none should be),
no unhandled exception in any worker log and no worker ending by itself.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.topics import DEAD_LETTERS, QUARANTINE
from velourcity_chaos.broker import ThrowawayBroker
from velourcity_chaos.poison import EXPECTED_REASON, poison, poison_plan
from velourcity_chaos.report import Tally
from velourcity_chaos.stack import Stack, TrackedPublisher, stack

SOURCE = ("velourcity-source-topic", "velourcity-source-partition", "velourcity-source-offset")
"""The headers that name a quarantined record's origin: quarantined twice still counts once."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Options:
    bootstrap: str
    directory: Path
    """Where logs and ledgers go (one folder per scenario)."""
    events: int | None = None
    """Events per scenario instead of each one's own figure."""
    ci: bool = False
    """The short form: fewer events, shorter faults."""

    def count(self, full: int, ci: int) -> int:
        return self.events if self.events is not None else (ci if self.ci else full)

    def seconds(self, full: float, ci: float) -> float:
        return ci if self.ci else full


Fault = Callable[[Stack, threading.Event], None]
"""Injects faults until the event is set (it runs in a thread of its own)."""


# The common run ----------------------------------------------------------------------------


def publish(
    run: Stack,
    publisher: TrackedPublisher,
    events: int,
    rate: float,
    *,
    between: Callable[[int], None] | None = None,
) -> None:
    """Send ``events`` at about ``rate`` a second, then wait for every delivery report."""
    started, chunk = time.monotonic(), 50
    for n, event in enumerate(run.events(events)):
        publisher.send(event)
        if between is not None:
            between(n)
        if n % chunk == chunk - 1:
            publisher.producer.poll(0)
            ahead = started + (n + 1) / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
    publisher.flush()


def wait_delivered(run: Stack, expected: set[tuple[str, str]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run.ledger.read()
        if expected <= run.ledger.first_ok.keys():
            return
        time.sleep(0.5)


def settle(run: Stack, quiet: float = 3.0, most: float = 20.0) -> None:
    """Wait until no request came for ``quiet`` seconds (late duplicates are counted too)."""
    deadline = time.monotonic() + most
    while time.monotonic() < deadline:
        run.receiver.sync()
        run.ledger.read()
        if time.time() - run.ledger.last_at >= quiet:
            return
        time.sleep(0.5)


def run_pipeline(
    run: Stack,
    tally: Tally,
    *,
    events: int,
    rate: float,
    workers: int,
    fault: Fault | None = None,
    timeout: float = 300.0,
    publisher_config: dict[str, Any] | None = None,
    between: Callable[[TrackedPublisher, int], None] | None = None,
) -> TrackedPublisher:
    """Publish with ``fault`` injected; wait for delivery; fill in the tally's figures."""
    started = time.monotonic()
    for _ in range(workers):
        run.start_worker()
    stop = threading.Event()
    injector = threading.Thread(target=fault, args=(run, stop), daemon=True) if fault else None
    publisher = TrackedPublisher(run.settings, **(publisher_config or {}))
    if injector is not None:
        injector.start()
    try:
        publish(
            run,
            publisher,
            events,
            rate,
            between=(lambda n: between(publisher, n)) if between is not None else None,
        )
        expected = {(e, run.path_of[a]) for e, a in _accounts_of(publisher).items()}
        wait_delivered(run, expected, timeout / 2)
    finally:
        stop.set()
        if injector is not None:
            injector.join(120)
    wait_delivered(run, expected, max(timeout - (time.monotonic() - started), 30))
    settle(run)
    _fill(run, tally, publisher, expected)
    tally.seconds = time.monotonic() - started
    return publisher


def _accounts_of(publisher: TrackedPublisher) -> dict[str, str]:
    """Event id → account, for the events the broker acknowledged."""
    return {e: a for e, a in publisher.account_of.items() if e in publisher.acked}


def _fill(
    run: Stack, tally: Tally, publisher: TrackedPublisher, expected: set[tuple[str, str]]
) -> None:
    ledger = run.ledger
    delivered = expected & ledger.first_ok.keys()
    tally.published = len(publisher.acked)
    tally.expected = len(expected)
    tally.delivered = len(delivered)
    tally.lost = len(expected - delivered)
    tally.duplicates = sum(ledger.oks[pair] - 1 for pair in delivered)
    delays = [ledger.first_ok[(e, p)] - publisher.sent_at[e] for e, p in delivered]
    tally.max_delay_s = max(delays, default=None)
    tally.dead_lettered, _ = run.count_topic(run.settings.topic(DEAD_LETTERS))
    tally.notes |= {
        "requests": ledger.requests,
        "answered non-2xx": ledger.refused_answers,
        "publish failures reported": len(publisher.failed),
        "worker restarts": run.restarts,
    }
    if publisher.failed:
        tally.notes["publisher errors"] = publisher.errors[:3]
    if unknown := ledger.first_ok.keys() - expected:
        tally.notes["delivered but not acknowledged to the publisher"] = len(unknown)
    if tally.lost:
        tally.problems.append(f"{tally.lost} lost")
    if tally.dead_lettered:
        tally.problems.append(f"{tally.dead_lettered} dead-lettered")
    if broken := run.tracebacks():
        tally.problems.append(f"Traceback in {', '.join(broken)}")
    if exits := run.unexpected_exits():
        codes = [w.process.returncode for w in exits]
        tally.problems.append(f"{len(exits)} workers exited by themselves (codes {codes})")
    silent = set(publisher.sent_at) - publisher.acked - publisher.failed
    if silent:
        tally.problems.append(f"{len(silent)} events neither acknowledged nor reported failed")


# 1. Worker crashes --------------------------------------------------------------------------


def kill_randomly(every: tuple[float, float], rng: random.Random) -> Fault:
    def fault(run: Stack, stop: threading.Event) -> None:
        while not stop.wait(rng.uniform(*every)):
            alive = run.running()
            if not alive:
                continue
            rng.choice(alive).kill()
            run.restarts += 1
            run.start_worker()

    return fault


def worker_crashes(options: Options) -> Tally:
    tally = Tally(scenario="1. worker crashes")
    events = options.count(20_000, 2_000)
    kills = options.seconds(5, 4), options.seconds(10, 7)
    with stack(options.bootstrap, options.directory, name="worker-crashes") as run:
        run_pipeline(
            run,
            tally,
            events=events,
            rate=options.seconds(250, 150),
            workers=3,
            fault=kill_randomly(kills, random.Random(1)),
            timeout=options.seconds(600, 180),
        )
        tally.notes["SIGKILLs"] = run.restarts
    if tally.duplicate_rate > 0.01:
        tally.problems.append(f"duplicates {tally.duplicate_rate:.2%} > 1 %")
    return tally


# 2. Broker restart ---------------------------------------------------------------------------


def broker_restart(options: Options) -> Tally:
    tally = Tally(scenario="2. broker restart")
    events = options.count(5_000, 1_000)
    down_for = options.seconds(30, 15)
    with ThrowawayBroker(options.directory / "broker") as broker:

        def fault(run: Stack, stop: threading.Event) -> None:
            if stop.wait(options.seconds(8, 5)):
                return
            broker.stop()
            tally.notes["broker down (s)"] = down_for
            time.sleep(down_for)
            broker.start()

        with stack(broker.bootstrap, options.directory, name="broker-restart") as run:
            run_pipeline(
                run,
                tally,
                events=events,
                rate=options.seconds(150, 60),
                workers=2,
                fault=fault,
                timeout=options.seconds(400, 240),
            )
    return tally


# 3. Receiver outage --------------------------------------------------------------------------


def receiver_outage(options: Options) -> Tally:
    tally = Tally(scenario="3. receiver outage")
    events = options.count(3_000, 300)
    refuse, unavailable = options.seconds(60, 10), options.seconds(20, 5)

    def fault(run: Stack, stop: threading.Event) -> None:
        time.sleep(2)
        run.receiver.set_mode("refuse")
        time.sleep(refuse)
        run.receiver.set_mode("unavailable")
        time.sleep(unavailable)
        run.receiver.set_mode("accept")
        tally.notes["outage"] = f"{refuse:g} s refused, then {unavailable:g} s of 503"

    # Tiers add up to about two minutes (±20 % jitter), longer than the outage; the breaker
    # probes every few seconds, so deliveries go out soon after recovery.
    schedule = "1,2,4,8,15,30,30,30" if not options.ci else "1,2,3,5,8"
    with stack(
        options.bootstrap,
        options.directory,
        name="receiver-outage",
        retry_schedule=schedule,
        breaker_cooldown=3,
    ) as run:
        run_pipeline(
            run,
            tally,
            events=events,
            rate=events / (refuse + unavailable),  # events keep coming during the outage
            workers=2,
            fault=fault,
            timeout=options.seconds(400, 150),
        )
    return tally


# 4. Poison input ------------------------------------------------------------------------------


def poison_input(options: Options) -> Tally:
    tally = Tally(scenario="4. poison input")
    valid = options.count(5_000, 500)
    bad = 1_000 if not options.ci else 100
    kinds = list(poison_plan(bad, random.Random(4)))
    every = max(valid // bad, 1)
    produced: dict[str, int] = {}
    refused: list[str] = []
    rng = random.Random(5)

    with stack(options.bootstrap, options.directory, name="poison-input") as run:
        topic = run.settings.topic(run.settings.orders_topic)
        sample = next(run.events(1))

        def interleave(publisher: TrackedPublisher, n: int) -> None:
            if n % every != every - 1 or not kinds:
                return
            kind = kinds.pop()

            def report(error: Any, _message: Any, kind: str = kind) -> None:
                if error is None:
                    produced[kind] = produced.get(kind, 0) + 1
                else:
                    refused.append(f"{kind}: {error.str()}")

            value = poison(kind, sample, rng)
            publisher.producer.produce(topic, value=value, key=rng.randbytes(8), on_delivery=report)

        run_pipeline(
            run,
            tally,
            events=valid,
            rate=options.seconds(300, 150),
            workers=2,
            timeout=options.seconds(300, 150),
            between=interleave,
        )
        expected = sum(produced.values())
        reasons: dict[str, int] = {}
        quarantine = run.settings.topic(QUARANTINE)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            tally.quarantined, reasons = run.count_topic(
                quarantine, "velourcity-quarantine-reason", distinct=SOURCE
            )
            if tally.quarantined >= expected:
                break
            time.sleep(1)
        wanted: dict[str, int] = {}
        for kind, count in produced.items():
            wanted[EXPECTED_REASON[kind]] = wanted.get(EXPECTED_REASON[kind], 0) + count
        tally.notes |= {
            "poison produced": dict(sorted(produced.items())),
            "quarantine reasons": dict(sorted(reasons.items())),
            "quarantine records (one may be quarantined twice)": run.count_topic(quarantine)[0],
            "refused by the broker at produce time": refused or "none",
        }
        if refused:
            tally.problems.append(f"{len(refused)} poison records refused at produce time")
        if reasons != wanted:
            tally.problems.append(f"quarantine reasons {reasons} != expected {wanted}")
        if run.restarts or len(run.running()) != 2:
            tally.problems.append("a worker restarted")
    return tally


# 5. Slow consumers and rebalance ----------------------------------------------------------------


def rebalance(options: Options) -> Tally:
    tally = Tally(scenario="5. rebalance")
    events = options.count(8_000, 1_000)
    changes: list[str] = []

    def fault(run: Stack, stop: threading.Event) -> None:
        grow = True
        while not stop.wait(options.seconds(10, 6)):
            alive = run.running()
            if grow and len(alive) < 4:
                run.start_worker()
            elif len(alive) > 1:
                alive[0].stop()  # SIGTERM: drains, commits, leaves
            grow = not grow if len(alive) in (1, 4) or random.random() < 0.5 else grow
            changes.append(str(len(run.running())))

    with stack(options.bootstrap, options.directory, name="rebalance") as run:
        run_pipeline(
            run,
            tally,
            events=events,
            rate=options.seconds(150, 100),
            workers=2,
            fault=fault,
            timeout=options.seconds(400, 180),
        )
    tally.notes["workers over time"] = " → ".join(["2", *changes])
    return tally


SCENARIOS: dict[str, Callable[[Options], Tally]] = {
    "worker-crashes": worker_crashes,
    "broker-restart": broker_restart,
    "receiver-outage": receiver_outage,
    "poison-input": poison_input,
    "rebalance": rebalance,
}
