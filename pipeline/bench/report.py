"""The benchmark's report: machine details, the figures as ratios to the measured limits, the
targets of issue 8, and the files under ``benchmarks/results/`` (JSON, Markdown, PNG).
"""

from __future__ import annotations

import os
import platform
import re
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson

PACKAGES = (
    "velourcity-webhooks",
    "faust-streaming",
    "aiokafka",
    "confluent-kafka",
    "httpx",
    "httpcore",
    "aiohttp",
    "orjson",
    "uvloop",
    "mode-streaming",
)


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    try:
        memory_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        memory_kb = 0
    return {
        "cores": os.cpu_count(),
        "cpu_model": model or platform.processor(),
        "memory_gb": round(memory_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def versions() -> dict[str, str]:
    found: dict[str, str] = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    try:
        from confluent_kafka import libversion

        found["librdkafka"] = str(libversion()[0])
    except ImportError:
        pass
    found["kafka"] = kafka_version()
    return found


def kafka_version() -> str:
    """The local broker's version (``kafka/pom.xml``, what ``scripts/kafka.sh`` runs)."""
    pom = Path(__file__).resolve().parents[2] / "kafka" / "pom.xml"
    try:
        match = re.search(r"<kafka.version>(.*?)</kafka.version>", pom.read_text())
    except OSError:
        match = None
    return f"{match.group(1)} (scripts/kafka.sh)" if match else "unknown"


TARGETS = (
    ("throughput ≥ 3,000 deliveries/s", "throughput", "deliveries_per_second", ">=", 3000.0),
    ("p99 ≤ 100 ms at 500 events/s", "latency", "p99_ms", "<=", 100.0),
)


def targets(scenarios: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Issue 8's targets, each with the measured figure and whether it is met."""
    rows: list[dict[str, Any]] = []
    for text, scenario, key, op, goal in TARGETS:
        if scenario in scenarios:
            value = float(scenarios[scenario][key])
            met = value >= goal if op == ">=" else value <= goal
            rows.append({"target": text, "measured": value, "met": met})
    noisy, tp, lat = (scenarios.get(k) for k in ("noisy-neighbor", "throughput", "latency"))
    if noisy and tp:
        ratio = noisy["deliveries_per_second"] / max(tp["deliveries_per_second"], 1e-9)
        rows.append(
            {
                "target": "noisy-neighbor healthy throughput within 20 % of throughput",
                "measured": round(ratio, 2),
                "met": ratio >= 0.8,
            }
        )
    if noisy and lat:
        at_500 = noisy["at_500"]
        ratio = at_500["p99_ms"] / max(lat["p99_ms"], 1e-9)
        # A p99 ratio means something only when both carried their load (none left out).
        carried = not lat.get("undelivered") and not at_500.get("undelivered")
        rows.append(
            {
                "target": "noisy-neighbor healthy p99 at 500/s ≤ 2x latency scenario's",
                "measured": round(ratio, 2),
                "met": ratio <= 2.0 and carried,
                **({} if carried else {"note": "overloaded: deliveries left out, not comparable"}),
            }
        )
    return rows


def headline(scenarios: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The top-level figures: the scenario's own, or for ``all`` the throughput scenario's
    rate and CPU and the latency scenario's percentiles at 500 events/s."""
    if len(scenarios) == 1:
        only = next(iter(scenarios.values()))
        return {k: only[k] for k in _HEADLINE_KEYS if k in only}
    rate = scenarios.get("throughput") or next(iter(scenarios.values()))
    lat = scenarios.get("latency") or rate
    return {
        "deliveries_per_second": rate["deliveries_per_second"],
        "p50_ms": lat["p50_ms"],
        "p95_ms": lat["p95_ms"],
        "p99_ms": lat["p99_ms"],
        "cpu_ms_per_delivery": rate["cpu_ms_per_delivery"],
        "peak_rss_mb": max(s.get("peak_rss_mb", 0.0) for s in scenarios.values()),
    }


_HEADLINE_KEYS = (
    "deliveries_per_second",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "cpu_ms_per_delivery",
    "peak_rss_mb",
)


def ratios(scenarios: dict[str, dict[str, Any]], limits: dict[str, Any]) -> dict[str, float]:
    """Each scenario's deliveries/s as a share of the raw Kafka rate and of the receiver's
    ceiling, and of each HTTP client's own ceiling against it (the workers use aiohttp's pool
    unless ``--http-client httpx``)."""
    out: dict[str, float] = {}
    for name, result in scenarios.items():
        rate = float(result.get("deliveries_per_second", 0.0))
        for limit, key in (
            ("kafka", "kafka_records_per_second"),
            ("receiver", "receiver_requests_per_second"),
            ("httpx", "httpx_requests_per_second"),
            ("aiohttp", "aiohttp_requests_per_second"),
        ):
            if limits.get(key):
                out[f"{name}/{limit}"] = round(rate / float(limits[key]), 3)
    return out


def _row(name: str, r: dict[str, Any], rate: str) -> str:
    return (
        f"| {name} | {rate} | {r.get('deliveries_per_second', 0):,.0f} | {r.get('p50_ms', 0):,.1f}"
        f" | {r.get('p95_ms', 0):,.1f} | {r.get('p99_ms', 0):,.1f}"
        f" | {r.get('cpu_ms_per_delivery', 0):.2f} | {r.get('peak_rss_mb', 0):.0f}"
        f" | {r.get('undelivered', '')} |"
    )


def markdown(report: dict[str, Any]) -> str:
    scenarios: dict[str, dict[str, Any]] = report["scenarios"]
    limits: dict[str, Any] = report["limits"]
    m = report["machine"]
    lines = [
        f"Command: `{report['command']}` ({report['started_at']}, {report['workers']} worker"
        f" process(es) with the {report['http_client']} transport on"
        f" {report['worker_event_loop']}, {report['duration_s']:g} s per phase)",
        "",
        f"Machine: {m['cores']} cores, {m['cpu_model']}, {m['memory_gb']} GB, Python "
        f"{m['python']}, Kafka {report['versions']['kafka']}; broker, workers, receiver and "
        f"load generator all on it; load average at start {m['load_average_at_start']}.",
        "",
        "| scenario | offered (events/s) | deliveries/s | p50 ms | p95 ms | p99 ms"
        " | worker CPU ms/delivery | worker peak RSS MB | left out (late) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, result in scenarios.items():
        if name == "latency":
            for rate, sub in result["rates"].items():
                lines.append(_row("latency", sub | {"peak_rss_mb": result["peak_rss_mb"]}, rate))
        elif name == "noisy-neighbor":
            lines.append(_row("noisy-neighbor (healthy)", result, "max"))
            at_500 = result["at_500"] | {"peak_rss_mb": result["peak_rss_mb"]}
            lines.append(_row("noisy-neighbor (healthy)", at_500, "500"))
        elif name == "retry-storm":
            lines.append(_row("retry-storm", result, str(result["offered_rate"])))
        else:
            lines.append(_row(name, result, str(result.get("offered_rate", ""))))
    if "retry-storm" in scenarios:
        storm = scenarios["retry-storm"]
        lines += [
            "",
            f"Retry storm: the receiver failed every request for {storm['storm_seconds']:g} s"
            f" (tiers {storm['retry_schedule']} s, breaker cool-down 5 s) at "
            f"{storm['offered_rate']} events/s; {storm['attempts']:,} attempts for "
            f"{storm['events_published']:,} events; backlog drained "
            f"**{storm['drain_seconds']:g} s** after the recovery; "
            f"{storm['undelivered']} undelivered.",
        ]
    lines += ["", "Limits measured in the same run:", ""]
    for key, text in (
        ("kafka_records_per_second", "raw Kafka produce → consume, 1 KB records (records/s)"),
        ("receiver_requests_per_second", "receiver ceiling, raw keep-alive client (requests/s)"),
        ("httpx_requests_per_second", "httpx client ceiling against it (requests/s)"),
        ("aiohttp_requests_per_second", "aiohttp client ceiling against it (requests/s)"),
    ):
        if key in limits:
            lines.append(f"- {text}: {limits[key]:,.0f}")
    if report["ratios"]:
        lines += ["", "Pipeline deliveries/s as a share of each limit:", ""]
        lines += [f"- {name}: {value:.1%}" for name, value in report["ratios"].items()]
    if report["targets"]:
        lines += ["", "| target | measured | met |", "| --- | ---: | --- |"]
        for t in report["targets"]:
            met = "yes" if t["met"] else "NO" + (f" ({t['note']})" if t.get("note") else "")
            lines.append(f"| {t['target']} | {t['measured']:,} | {met} |")
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> Path | None:
    """Latency percentiles against the offered rate (the latency scenario's rates, and the
    noisy neighbour's healthy endpoint at 500/s); None when matplotlib is not installed."""
    lat = report["scenarios"].get("latency")
    if lat is None:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    rates = sorted(lat["rates"], key=float)
    xs = [float(r) for r in rates]
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for key, style in (("p50_ms", "o-"), ("p95_ms", "s-"), ("p99_ms", "^-")):
        axes.plot(xs, [lat["rates"][r][key] for r in rates], style, label=key.split("_")[0])
    noisy = report["scenarios"].get("noisy-neighbor")
    if noisy is not None:
        axes.plot(
            [500.0],
            [noisy["at_500"]["p99_ms"]],
            "rx",
            markersize=10,
            label="p99, healthy endpoint beside a hanging one",
        )
    axes.axhline(100, color="grey", linestyle=":", label="target p99 at 500/s")
    axes.set_xlabel("offered rate (events/s, one endpoint)")
    axes.set_ylabel("published → received (ms)")
    axes.set_yscale("log")
    axes.set_title(f"Velourcity Webhooks latency, {report['machine']['cores']} cores")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def write(report: dict[str, Any], out: Path) -> dict[str, str]:
    out.mkdir(parents=True, exist_ok=True)
    files = {"json": out / "latest.json", "markdown": out / "latest.md"}
    files["json"].write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    files["markdown"].write_text(markdown(report))
    if (png := plot(report, out / "latency-vs-rate.png")) is not None:
        files["png"] = png
    return {kind: str(path) for kind, path in files.items()}
