"""The benchmark's paced load generator, in a process of its own:
``python -m velourcity_bench.loadgen --rate 500 --seconds 10 --mix acct_a=0.8,acct_b=0.2 --out F``
(settings from ``VELOURCITY_*``, as a worker gets them).

It is built not to be what is measured (issue 15: the in-process generator it replaces made
the latency scenario report 15 times what a partner sees):

* every event is validated and Avro-encoded *before* the load starts (``Publisher.encode``),
  so the paced loop only hands ready bytes to librdkafka (a few µs an event);
* sends are paced to a schedule (event *i* at ``start + i / rate``), checked every 0.5 ms,
  so there are no catch-up bursts unless the generator itself falls behind, and how far it
  fell behind is reported (``late_p99_ms``, ``late_max_ms``);
* it runs in its own process: it shares no interpreter, GIL or event loop with the parent
  (which polls the receiver) and no core with a worker unless the OS puts it there.

The clock starts when an event is handed to the producer (``time.time()`` just before
``produce``): the file ``--out`` gets one JSON line ``[event_id, account_id, unix_seconds]``
per event. The event's own ``occurred_at`` (the body's ``created_at``) is its encoding time,
up to a phase earlier: it is not what latency is measured from.

Protocol with the parent: after encoding it prints ``ready``; it starts the load when a line
arrives on stdin; at the end it prints one JSON summary line.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from typing import Any

import orjson
from confluent_kafka import Producer

from pipeline.events.body import render_body
from pipeline.events.samples import new_event, sample_event
from pipeline.kafka.connection import librdkafka_config
from pipeline.publisher import Publisher
from pipeline.settings import Settings, load_settings

BODY_BYTES = 1000
TICK_SECONDS = 0.0005
"""How often the paced loop looks at its schedule."""

PRODUCER_CONFIG: dict[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 5,
    "compression.type": "lz4",
    "message.max.bytes": 8 * 1024 * 1024,
    "message.timeout.ms": 120_000,
}
"""The same producer as :class:`~pipeline.publisher.Publisher`'s (what a domain service runs)."""

Encoded = tuple[str, str, str, bytes, bytes, list[tuple[str, str | bytes | None]]]
"""event id, account id, topic, key, value, headers."""


def template(account_id: str) -> dict[str, Any]:
    """An ``order.created`` whose webhook body is about :data:`BODY_BYTES` bytes."""
    event = sample_event("order.created", account_id, rng=random.Random(7))
    event["data"]["special_instructions"] = ""
    padding = BODY_BYTES - len(render_body(event))
    event["data"]["special_instructions"] = "Ring twice. " * (max(padding, 0) // 12)
    return event


def parse_mix(text: str) -> dict[str, float]:
    """``acct_a=0.8,acct_b=0.2`` → ``{"acct_a": 0.8, "acct_b": 0.2}``."""
    mix: dict[str, float] = {}
    for part in text.split(","):
        account, _, weight = part.partition("=")
        mix[account.strip()] = float(weight or 1)
    return mix


def encode_events(
    settings: Settings, mix: dict[str, float], count: int, *, seed: int = 11, prefix: str = "ld"
) -> list[Encoded]:
    """``count`` events, each to an account drawn from ``mix``, validated and encoded."""
    publisher = Publisher(settings)
    rng = random.Random(seed)
    accounts = list(mix)
    weights = [mix[a] for a in accounts]
    templates = {a: template(a) for a in accounts}
    out: list[Encoded] = []
    for n, account in enumerate(rng.choices(accounts, weights=weights, k=count)):
        data = dict(templates[account]["data"], order_id=f"ord_{prefix}{n:09d}")
        event = new_event("order.created", account, data)
        topic, key, value = publisher.encode(event)
        headers: list[tuple[str, str | bytes | None]] = [
            ("velourcity-event-type", b"order.created"),
            ("velourcity-event-id", event["id"].encode()),
        ]
        out.append((event["id"], account, topic, key, value, headers))
    return out


def paced_send(
    producer: Producer, events: list[Encoded], rate: float, burst: int = 1
) -> tuple[list[float], list[float]]:
    """Hand event *i* to the producer at ``start + i / rate`` (with ``burst`` > 1: in groups
    of that many, each group at its first event's time); return each one's send time (unix
    seconds) and how late it was against its schedule (seconds)."""
    sent: list[float] = [0.0] * len(events)
    late: list[float] = [0.0] * len(events)
    produce, poll, clock = producer.produce, producer.poll, time.perf_counter
    start = clock()
    offset = time.time() - start  # perf_counter → unix time, taken once
    i, n = 0, len(events)
    while i < n:
        now = clock()
        due = min(n, (int((now - start) * rate / burst) + 1) * burst)
        if due <= i:
            time.sleep(min(TICK_SECONDS, max(0.0, start + i / rate - now)))
            continue
        while i < due:
            _, _, topic, key, value, headers = events[i]
            at = clock()
            while True:
                try:
                    produce(topic, value=value, key=key, headers=headers)
                    break
                except BufferError:  # local queue full: let delivery reports drain it
                    poll(0.01)
            sent[i] = at + offset
            late[i] = at - (start + (i - i % burst) / rate)
            i += 1
        poll(0)
    return sent, late


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def run(
    settings: Settings,
    *,
    rate: float,
    seconds: float,
    mix: dict[str, float],
    out: str,
    seed: int = 11,
    prefix: str = "ld",
    burst: int = 1,
) -> dict[str, Any]:
    count = max(1, round(rate * seconds))
    events = encode_events(settings, mix, count, seed=seed, prefix=prefix)
    producer = Producer(librdkafka_config(settings, **PRODUCER_CONFIG))
    producer.list_topics(timeout=30)  # connected before the clock starts
    print("ready", flush=True)
    sys.stdin.readline()
    cpu_before = time.process_time()
    started = time.time()
    sent, late = paced_send(producer, events, rate, burst)
    ended = time.time()
    cpu = time.process_time() - cpu_before
    left = producer.flush(120)
    with open(out, "wb") as f:
        for (event_id, account, *_), at in zip(events, sent, strict=True):
            f.write(orjson.dumps([event_id, account, at]) + b"\n")
    published: dict[str, int] = dict.fromkeys(mix, 0)
    for _, account, *_ in events:
        published[account] += 1
    return {
        "started": started,
        "ended": ended,
        "published": published,
        "unacknowledged": left,
        "cpu_seconds": round(cpu, 3),
        "late_p99_ms": round(_percentile(late, 99) * 1000, 2),
        "late_max_ms": round(max(late, default=0.0) * 1000, 2),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--mix", required=True, help="account=weight,...")
    parser.add_argument("--out", required=True, help="send times, one JSON line per event")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--prefix", default="ld", help="order ids are ord_<prefix><n>")
    parser.add_argument("--burst", type=int, default=1, help="events handed over together")
    args = parser.parse_args(argv)
    summary = run(
        load_settings(),
        rate=args.rate,
        seconds=args.seconds,
        mix=parse_mix(args.mix),
        out=args.out,
        seed=args.seed,
        prefix=args.prefix,
        burst=max(1, args.burst),
    )
    print(orjson.dumps(summary).decode(), flush=True)


if __name__ == "__main__":
    main()
