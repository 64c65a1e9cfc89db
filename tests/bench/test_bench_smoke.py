"""Smoke test of ``velourcity bench``: every scenario in its short form against the session
broker, with ``--profile``. It checks the report's shape (keys, positive figures, files
written), never its speed: speed is measured by the benchmark itself, not asserted by a test."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEADLINE = (
    "deliveries_per_second",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "cpu_ms_per_delivery",
    "peak_rss_mb",
    "fanout_alone_events_per_second",
    "sender_alone_deliveries_per_second",
    "sender_alone_cpu_ms_per_delivery",
)
SCENARIOS = (
    "throughput",
    "fanout",
    "fanout-alone",
    "sender-alone",
    "latency",
    "noisy-neighbor",
    "retry-storm",
)
TARGETS = (
    "throughput (deliveries/s, 1 worker process(es))",
    "worker CPU per delivery (ms)",
    "p99 at 500 events/s (ms)",
    "p99 at 1,000 events/s (ms)",
    "noisy neighbour: healthy endpoint's rate / throughput scenario's",
)


@pytest.mark.kafka
@pytest.mark.timeout(1500)
def test_bench_all_scenarios_short_form(kafka_bootstrap: str, tmp_path: Path) -> None:
    out = tmp_path / "results"
    done = subprocess.run(
        [
            str(ROOT / ".venv" / "bin" / "velourcity"),
            "bench",
            "--scenario",
            "all",
            "--duration",
            "10",  # the short form
            "--profile",
            "--json",
            "--out",
            str(out),
        ],
        env=dict(os.environ, VELOURCITY_KAFKA_BOOTSTRAP=kafka_bootstrap),
        capture_output=True,
        text=True,
        timeout=1440,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])  # the last line is the report

    for key in HEADLINE:
        assert report[key] > 0, key
    assert report["scenario"] == "all"
    assert report["duration_s"] == 10
    assert report["workers"] == 1
    assert set(report["scenarios"]) == set(SCENARIOS)
    assert report["machine"]["cores"] >= 1
    assert report["machine"]["cpu_model"]
    for package in ("faust-streaming", "aiokafka", "confluent-kafka", "httpx", "kafka"):
        assert report["versions"][package]
    for limit in (
        "kafka_records_per_second",
        "receiver_requests_per_second",
        "httpx_requests_per_second",
        "aiohttp_requests_per_second",
        "aiohttp_cpu_ms_per_request",
    ):
        assert report["limits"][limit] > 0, limit
    assert report["ratios"]["throughput/kafka"] > 0
    assert report["ratios"]["throughput/aiohttp"] > 0
    versus = report["versus_aiohttp"]
    assert versus["rate_share"] > 0 and versus["cpu_share"] > 0
    assert (
        versus["deliveries_per_second"]
        == report["scenarios"]["throughput"]["deliveries_per_second"]
    )
    assert report["http_client"] == "aiohttp"  # the production defaults are what is measured
    assert report["worker_event_loop"] == "uvloop"
    assert report["tracing"] is None  # off unless --tracing
    assert [t["target"] for t in report["targets"]] == list(TARGETS)  # met or not
    assert {t["met"] for t in report["targets"]} <= {"yes", "least acceptable only", "no"}

    for name in ("throughput", "fanout", "latency", "noisy-neighbor"):
        result = report["scenarios"][name]
        assert result["deliveries"] > 0, name
        assert result["workers"] == 1, name
        for key in ("deliveries_per_second", "p50_ms", "p99_ms", "cpu_ms_per_delivery"):
            assert result[key] > 0, (name, key)

    latency = report["scenarios"]["latency"]
    assert set(latency["rates"]) == {"100", "500", "1000", "2000"}
    for rate, sub in latency["rates"].items():
        assert sub["events_published"] == int(rate) * 10, rate  # paced: rate x duration
        assert sub["deliveries"] > 0 and sub["p99_ms"] >= sub["p50_ms"] > 0, rate
        assert sub["generator"]["late_p99_ms"] >= 0, rate
        assert sub["generator"]["cpu_cores"] > 0, rate
    assert latency["p99_ms"] == latency["rates"]["500"]["p99_ms"]  # the headline rate

    alone = report["scenarios"]["fanout-alone"]
    assert alone["deliveries"] >= alone["events_published"] > 0  # every event fanned out
    assert alone["events_per_second"] > 0 and alone["cpu_ms_per_event"] > 0
    assert alone["workers"] == 1

    sender = report["scenarios"]["sender-alone"]
    assert sender["deliveries"] >= sender["deliveries_backlog"] > 0  # the whole backlog sent
    assert sender["deliveries_per_second"] > 0 and sender["cpu_ms_per_delivery"] > 0

    assert report["scenarios"]["noisy-neighbor"]["at_500"]["p99_ms"] > 0
    storm = report["scenarios"]["retry-storm"]
    assert storm["attempts"] > storm["deliveries"] > 0  # failures first, then deliveries
    assert storm["drain_seconds"] >= 0

    assert json.loads((out / "latest.json").read_text())["scenario"] == "all"
    table = (out / "latest.md").read_text()
    assert "| scenario |" in table and "throughput" in table and "fanout-alone" in table
    assert "**1 worker process(es)**" in table
    if "png" in report["files"]:
        assert (out / "latency-vs-rate.png").read_bytes()[:4] == b"\x89PNG"

    profiles = report["profiles"]
    assert "throughput-worker0" in profiles and "fanout-alone-worker0" in profiles
    assert "sender-alone-worker0" in profiles
    for name, profile in profiles.items():
        assert "error" not in profile, (name, profile)
        assert profile["samples"] > 0 and profile["self"] and profile["files"], name
        assert (out / profile["raw"]).stat().st_size > 0, name
        assert (out / profile["summary"]).read_text().startswith(f"# py-spy: {name}")
        assert f"]({profile['summary']})" in table, name  # linked from the report
