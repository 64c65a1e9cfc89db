"""Benchmarks (``velourcity bench``): how fast, how much CPU, and how far from this machine's
limits. Scenarios live in :mod:`~velourcity_bench.scenarios`, the limits in
:mod:`~velourcity_bench.limits`, the report in :mod:`~velourcity_bench.report`.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from pipeline.settings import Settings
from velourcity_bench import report
from velourcity_bench.collector import SpanCollector
from velourcity_bench.limits import kafka_rate
from velourcity_bench.profile import Profiler, py_spy
from velourcity_bench.scenarios import LATENCY_RATES, SCENARIOS, Options
from velourcity_bench.stack import ReceiverProcess, cpu_seconds

HTTP_CLIENT_CONNECTIONS = 10
"""Connections the client ceilings use: one endpoint's requests in flight from one worker."""


def measure_limits(
    bootstrap: str, seconds: float, log_dir: Path, progress: Callable[[str], None]
) -> dict[str, Any]:
    """The raw Kafka rate, the receiver's ceiling, and httpx's and aiohttp's against it."""
    progress("limits: raw Kafka produce → consume")
    raw = kafka_rate(Settings(kafka_bootstrap=bootstrap, topic_prefix="bench-"), seconds=seconds)
    limits: dict[str, Any] = {"kafka_records_per_second": round(raw["records_per_second"], 1)}
    log_dir.mkdir(parents=True, exist_ok=True)
    receiver = ReceiverProcess(log_dir / "limits-receiver.log")
    try:
        for client, connections, key in (
            ("raw", 64, "receiver_requests_per_second"),
            ("httpx", HTTP_CLIENT_CONNECTIONS, "httpx_requests_per_second"),
            ("aiohttp", HTTP_CLIENT_CONNECTIONS, "aiohttp_requests_per_second"),
        ):
            progress(f"limits: {client} client → receiver, {connections} connections")
            before = cpu_seconds(receiver.process.pid)
            started = time.monotonic()
            done = subprocess.run(  # noqa: S603 (our own interpreter and module)
                [
                    sys.executable,
                    "-m",
                    "velourcity_bench.limits",
                    "hammer",
                    "--url",
                    receiver.url("ok", "limit"),
                    "--seconds",
                    str(seconds),
                    "--connections",
                    str(connections),
                    "--client",
                    client,
                ],
                capture_output=True,
                check=True,
                timeout=seconds + 60,
            )
            busy = (cpu_seconds(receiver.process.pid) - before) / (time.monotonic() - started)
            hammered = orjson.loads(done.stdout.splitlines()[-1])
            limits[key] = round(hammered["requests_per_second"], 1)
            if client != "raw":  # the client's own CPU for one request, beside the worker's
                limits[f"{client}_cpu_ms_per_request"] = round(hammered["cpu_ms_per_request"], 3)
            if client == "raw":
                limits["receiver_cpu_cores_at_ceiling"] = round(busy, 2)
    finally:
        receiver.stop()
    limits["http_client_connections"] = HTTP_CLIENT_CONNECTIONS
    return limits


def default_out(now: datetime | None = None) -> Path:
    """``.local/bench/<UTC timestamp>/``: outside the tracked tree (``.local/`` is ignored)."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return Path(".local") / "bench" / stamp


def run_bench(
    scenario: str,
    *,
    duration: float,
    workers: int,
    bootstrap: str,
    out: Path | None,
    command: str,
    http_client: str = "aiohttp",
    event_loop: str = "uvloop",
    profile: bool = False,
    latency_rates: Sequence[int] = LATENCY_RATES,
    tracing: bool = False,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run one scenario (or ``all``), measure the limits, write the report under ``out``
    (``None``: :func:`default_out`); return it."""
    names = list(SCENARIOS) if scenario == "all" else [scenario]
    now = datetime.now(UTC)
    started_at = now.isoformat(timespec="seconds")
    out = out if out is not None else default_out(now)
    progress(f"report: {out}/")
    machine = report.machine()
    log_dir = Path(tempfile.mkdtemp(prefix="velourcity-bench-"))
    progress(f"logs: {log_dir}")
    profiler = Profiler(out / "profiles") if profile else None
    if profiler is not None:
        py_spy()  # fail now, not after the limits, when it is missing
    collector = SpanCollector() if tracing else None
    options = Options(
        bootstrap,
        duration,
        workers,
        log_dir,
        progress,
        http_client,
        event_loop,
        profiler,
        tuple(latency_rates),
        None if collector is None else collector.url,
    )
    limits = measure_limits(bootstrap, min(duration, 10.0), log_dir, progress)
    results: dict[str, dict[str, Any]] = {}
    try:
        for name in names:
            progress(f"{name}: starting")
            results[name] = SCENARIOS[name](options)
            progress(f"{name}: {results[name]['deliveries_per_second']:,} deliveries/s")
    finally:
        if collector is not None:
            collector.close()
    result: dict[str, Any] = {
        "scenario": scenario,
        "duration_s": duration,
        "workers": workers,
        "http_client": http_client,
        "worker_event_loop": event_loop,
        "tracing": None
        if collector is None
        else {
            "spans_exported": collector.count,
            "sample_ratio": Settings().trace_sample_ratio,  # VELOURCITY_TRACE_SAMPLE_RATIO
        },
        "command": command,
        "started_at": started_at,
        **report.headline(results),
        "rates": {name: r.get("offered_rate") for name, r in results.items()},
        "machine": machine,
        "versions": report.versions(),
        "limits": limits,
        "ratios": report.ratios(results, limits),
        "versus_aiohttp": report.versus_aiohttp(results, limits),
        "targets": report.targets(results),
        "scenarios": results,
        "logs": str(log_dir),
        "profiles": _profiles(profiler, out),
    }
    result["files"] = report.write(result, out)
    return result


def _profiles(profiler: Profiler | None, out: Path) -> dict[str, Any]:
    """Each profiled worker's summary, with its files relative to the report."""
    if profiler is None:
        return {}
    found: dict[str, Any] = {}
    for name, summary in profiler.results.items():
        found[name] = dict(summary)
        for key in ("raw", "summary"):
            if key in summary:
                found[name][key] = str(Path(summary[key]).relative_to(out))
    return found


__all__ = ["LATENCY_RATES", "SCENARIOS", "default_out", "measure_limits", "run_bench"]
