"""Smoke test of ``velourcity bench``: every scenario in its short form against the session
broker. It checks the report's shape (keys, positive figures, files written), never its speed:
speed is measured by the benchmark itself, not asserted by a test."""

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
)
SCENARIOS = ("throughput", "fanout", "latency", "noisy-neighbor", "retry-storm")


@pytest.mark.kafka
@pytest.mark.timeout(960)
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
            "--json",
            "--out",
            str(out),
        ],
        env=dict(os.environ, VELOURCITY_KAFKA_BOOTSTRAP=kafka_bootstrap),
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])  # the last line is the report

    for key in HEADLINE:
        assert report[key] > 0, key
    assert report["scenario"] == "all"
    assert report["duration_s"] == 10
    assert report["workers"] >= 1
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
    ):
        assert report["limits"][limit] > 0, limit
    assert report["ratios"]["throughput/kafka"] > 0
    assert report["ratios"]["throughput/aiohttp"] > 0
    assert report["http_client"] == "aiohttp"  # the production default is what is measured
    assert {t["target"] for t in report["targets"]}  # figures beside the targets, met or not

    for name in ("throughput", "fanout", "latency", "noisy-neighbor"):
        result = report["scenarios"][name]
        assert result["deliveries"] > 0, name
        for key in ("deliveries_per_second", "p50_ms", "p99_ms", "cpu_ms_per_delivery"):
            assert result[key] > 0, (name, key)
    assert set(report["scenarios"]["latency"]["rates"]) == {"100", "500", "1000"}
    assert report["scenarios"]["noisy-neighbor"]["at_500"]["p99_ms"] > 0
    storm = report["scenarios"]["retry-storm"]
    assert storm["attempts"] > storm["deliveries"] > 0  # failures first, then deliveries
    assert storm["drain_seconds"] >= 0

    assert json.loads((out / "latest.json").read_text())["scenario"] == "all"
    table = (out / "latest.md").read_text()
    assert "| scenario |" in table and "throughput" in table
    if "png" in report["files"]:
        assert (out / "latency-vs-rate.png").read_bytes()[:4] == b"\x89PNG"
