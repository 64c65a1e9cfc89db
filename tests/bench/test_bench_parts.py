"""The benchmark's parts that need no broker: the paced schedule, the py-spy summary, the
targets and the report's default place."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from velourcity_bench import default_out, report
from velourcity_bench.loadgen import paced_send, parse_mix
from velourcity_bench.profile import summarize, summary_markdown


class _Producer:
    """Records when each value was handed over (what paced_send does with a real one)."""

    def __init__(self) -> None:
        self.values: list[bytes] = []

    def produce(self, topic: str, *, value: bytes, key: bytes, headers: Any) -> None:
        self.values.append(value)

    def poll(self, timeout: float) -> int:
        return 0


def test_paced_send_keeps_to_its_schedule_without_bursts() -> None:
    events = [(f"evt_{n}", "acct", "t", b"k", str(n).encode(), []) for n in range(200)]
    producer = _Producer()
    sent, late = paced_send(producer, events, rate=1000.0)  # type: ignore[arg-type]
    assert producer.values == [str(n).encode() for n in range(200)]  # all of them, in order
    span = sent[-1] - sent[0]
    assert 0.19 <= span <= 0.4, span  # 199 intervals of 1 ms, not one burst
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert sum(1 for g in gaps if g < 0.0002) < 20  # at most a few caught up back to back
    assert max(late) < 0.1


def test_parse_mix() -> None:
    assert parse_mix("acct_a=0.8,acct_b=0.2") == {"acct_a": 0.8, "acct_b": 0.2}
    assert parse_mix("acct_a") == {"acct_a": 1.0}


def test_default_out_is_outside_the_tracked_tree() -> None:
    path = default_out(datetime(2026, 12, 1, 22, 5, 9, tzinfo=UTC))
    assert path == Path(".local/bench/20261201T220509Z")


def test_summarize_folded_stacks(tmp_path: Path) -> None:
    folded = tmp_path / "w.txt"
    folded.write_text(
        "run (asyncio/base_events.py:600);send (pipeline/delivery/sender.py:10) 30\n"
        "run (asyncio/base_events.py:600);send (pipeline/delivery/sender.py:12);"
        "dumps (orjson.py:1) 50\n"
        "run (asyncio/base_events.py:600);select (selectors.py:468) 20\n"
    )
    summary = summarize(folded)
    assert summary["samples"] == 100
    assert summary["self"][0] == {"name": "dumps (orjson.py)", "percent": 50.0}
    assert {"name": "send (pipeline/delivery/sender.py)", "percent": 30.0} in summary["self"]
    files = {row["name"]: row["percent"] for row in summary["files"]}
    assert files["asyncio/base_events.py"] == 100.0
    assert files["pipeline/delivery/sender.py"] == 80.0  # inclusive, counted once a stack
    text = summary_markdown("throughput-worker0", summary)
    assert text.startswith("# py-spy: throughput-worker0") and "| 50.0 % | `dumps" in text


def _scenarios(**over: Any) -> dict[str, dict[str, Any]]:
    scenarios: dict[str, dict[str, Any]] = {
        "throughput": {"deliveries_per_second": 3200.0, "cpu_ms_per_delivery": 0.19, "workers": 2},
        "latency": {
            "rates": {
                "500": {"p99_ms": 40.0, "undelivered": 0},
                "1000": {"p99_ms": 900.0, "undelivered": 12},
            }
        },
        "noisy-neighbor": {"deliveries_per_second": 2800.0},
    }
    return scenarios | over


def test_targets_are_issue_15s() -> None:
    rows = {row["target"]: row for row in report.targets(_scenarios())}
    throughput = rows["throughput (deliveries/s, 2 worker process(es))"]
    assert throughput["met"] == "least acceptable only"  # 3,200: under 5,000, over 3,000
    assert (throughput["goal"], throughput["least_acceptable"]) == (">= 5000", ">= 3000")
    assert rows["worker CPU per delivery (ms)"]["met"] == "yes"
    assert rows["p99 at 500 events/s (ms)"]["met"] == "yes"
    late = rows["p99 at 1,000 events/s (ms)"]
    assert late["met"] == "no" and "12 deliveries still late" in late["note"]
    noisy = rows["noisy neighbour: healthy endpoint's rate / throughput scenario's"]
    assert noisy["measured"] == 0.88 and noisy["met"] == "no"  # 2,800 / 3,200 < 0.9


def test_versus_aiohttp() -> None:
    limits = {"aiohttp_requests_per_second": 8000.0, "aiohttp_cpu_ms_per_request": 0.1}
    versus = report.versus_aiohttp(_scenarios(), limits)
    assert versus["rate_share"] == 0.4 and versus["cpu_share"] == round(0.1 / 0.19, 3)
    assert report.versus_aiohttp({}, limits) == {}
