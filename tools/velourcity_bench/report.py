"""The benchmark's report: machine details, the figures as ratios to the measured limits, the
targets of issue 15, and the files under ``--out`` (JSON, Markdown, PNG; ``profiles/`` with
``--profile``).
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
    # text, scenario, key, goal, least acceptable, ">=" or "<="
    (
        "throughput (deliveries/s, {workers} worker process(es))",
        "throughput",
        "deliveries_per_second",
        5000.0,
        3000.0,
        ">=",
    ),
    ("worker CPU per delivery (ms)", "throughput", "cpu_ms_per_delivery", 0.2, 0.35, "<="),
    ("p99 at 500 events/s (ms)", "latency@500", "p99_ms", 50.0, None, "<="),
    ("p99 at 1,000 events/s (ms)", "latency@1000", "p99_ms", 100.0, None, "<="),
)
"""Issue 15's targets."""
NOISY_SHARE = 0.9
"""The noisy neighbour's healthy endpoint keeps this share of the throughput scenario's rate."""


def _figure(scenarios: dict[str, dict[str, Any]], where: str, key: str) -> dict[str, Any] | None:
    name, _, rate = where.partition("@")
    result = scenarios.get(name)
    if result is not None and rate:
        result = result.get("rates", {}).get(rate)
    return result if result is not None and key in result else None


def _met(value: float, goal: float, least: float | None, op: str) -> str:
    def ok(limit: float) -> bool:
        return value >= limit if op == ">=" else value <= limit

    if ok(goal):
        return "yes"
    return "least acceptable only" if least is not None and ok(least) else "no"


def targets(scenarios: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Issue 15's targets, each with the measured figure and whether it is met (``met``:
    ``yes``, ``least acceptable only`` or ``no``)."""
    rows: list[dict[str, Any]] = []
    for text, where, key, goal, least, op in TARGETS:
        result = _figure(scenarios, where, key)
        if result is None:
            continue
        value = float(result[key])
        target = text.format(workers=result.get("workers", 1))
        row = {"target": target, "goal": f"{op} {goal:g}", "measured": value}
        row["least_acceptable"] = f"{op} {least:g}" if least is not None else ""
        row["met"] = _met(value, goal, least, op)
        if result.get("undelivered"):
            row["note"] = f"{result['undelivered']:,} deliveries still late when measured"
        rows.append(row)
    noisy, tp = scenarios.get("noisy-neighbor"), scenarios.get("throughput")
    if noisy and tp:
        ratio = noisy["deliveries_per_second"] / max(tp["deliveries_per_second"], 1e-9)
        rows.append(
            {
                "target": "noisy neighbour: healthy endpoint's rate / throughput scenario's",
                "goal": f">= {NOISY_SHARE:g}",
                "least_acceptable": "",
                "measured": round(ratio, 2),
                "met": _met(ratio, NOISY_SHARE, None, ">="),
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
    figures = {
        "deliveries_per_second": rate["deliveries_per_second"],
        "p50_ms": lat["p50_ms"],
        "p95_ms": lat["p95_ms"],
        "p99_ms": lat["p99_ms"],
        "cpu_ms_per_delivery": rate["cpu_ms_per_delivery"],
        "peak_rss_mb": max(s.get("peak_rss_mb", 0.0) for s in scenarios.values()),
    }
    if "fanout-alone" in scenarios:
        figures["fanout_alone_events_per_second"] = scenarios["fanout-alone"]["events_per_second"]
    if "sender-alone" in scenarios:
        alone = scenarios["sender-alone"]
        figures["sender_alone_deliveries_per_second"] = alone["deliveries_per_second"]
        figures["sender_alone_cpu_ms_per_delivery"] = alone["cpu_ms_per_delivery"]
    return figures


def versus_aiohttp(scenarios: dict[str, dict[str, Any]], limits: dict[str, Any]) -> dict[str, Any]:
    """The throughput scenario against plain aiohttp's ceiling in the same run: its rate as a
    share of aiohttp's requests/s, and aiohttp's CPU per request as a share of the worker's
    CPU per delivery (1.0 would be a pipeline that costs no more than its HTTP requests)."""
    tp = scenarios.get("throughput")
    ceiling = limits.get("aiohttp_requests_per_second")
    client_cpu = limits.get("aiohttp_cpu_ms_per_request")
    if tp is None or not ceiling:
        return {}
    figures: dict[str, Any] = {
        "deliveries_per_second": tp["deliveries_per_second"],
        "aiohttp_requests_per_second": ceiling,
        "rate_share": round(tp["deliveries_per_second"] / float(ceiling), 3),
    }
    if client_cpu and tp.get("cpu_ms_per_delivery"):
        figures |= {
            "worker_cpu_ms_per_delivery": tp["cpu_ms_per_delivery"],
            "aiohttp_cpu_ms_per_request": client_cpu,
            "cpu_share": round(float(client_cpu) / float(tp["cpu_ms_per_delivery"]), 3),
        }
    return figures


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


def _scenario_rows(scenarios: dict[str, dict[str, Any]]) -> list[str]:
    lines = [
        "| scenario | offered (events/s) | deliveries/s | p50 ms | p95 ms | p99 ms"
        " | worker CPU ms/delivery | worker peak RSS MB | left out (late) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, result in scenarios.items():
        if name == "latency":
            for rate, sub in result["rates"].items():
                lines.append(_row("latency", sub, rate))
        elif name == "noisy-neighbor":
            lines.append(_row("noisy-neighbor (healthy)", result, "max"))
            at_500 = result["at_500"] | {"peak_rss_mb": result["peak_rss_mb"]}
            lines.append(_row("noisy-neighbor (healthy)", at_500, "500"))
        elif name == "fanout-alone":
            lines.append(
                f"| fanout-alone (no sender; events/s, CPU ms/event) | backlog of"
                f" {result['events_published']:,} | {result['events_per_second']:,.0f}"
                f" | | | | {result['cpu_ms_per_event']:.2f} | {result['peak_rss_mb']:.0f} | |"
            )
        else:
            lines.append(_row(name, result, str(result.get("offered_rate", ""))))
    return lines


def _latency_notes(lat: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "Latency: each rate on a fresh stack (empty backlog, workers warmed up), paced load from"
        " the generator's own process (events encoded beforehand); the clock starts when an"
        " event is handed to the producer and stops when the receiver read its POST. How far"
        " the generator's sends fell behind their schedule, and its CPU:",
        "",
    ]
    for rate, sub in lat["rates"].items():
        gen = sub.get("generator", {})
        lines.append(
            f"- {rate}/s: late p99 {gen.get('late_p99_ms', 0):g} ms, max"
            f" {gen.get('late_max_ms', 0):g} ms; generator {gen.get('cpu_cores', 0):g} cores;"
            f" worker {sub.get('worker_cpu_cores', 0):g} cores, machine"
            f" {sub.get('machine_cpu_cores_busy', 0):g} cores busy"
        )
    return lines


def _limit_lines(report: dict[str, Any]) -> list[str]:
    limits: dict[str, Any] = report["limits"]
    lines = ["", "Limits measured in the same run:", ""]
    for key, text in (
        ("kafka_records_per_second", "raw Kafka produce → consume, 1 KB records (records/s)"),
        ("receiver_requests_per_second", "receiver ceiling, raw keep-alive client (requests/s)"),
        ("httpx_requests_per_second", "httpx client ceiling against it (requests/s)"),
        ("aiohttp_requests_per_second", "aiohttp client ceiling against it (requests/s)"),
    ):
        if key in limits:
            lines.append(f"- {text}: {limits[key]:,.0f}")
    for client in ("httpx", "aiohttp"):
        if f"{client}_cpu_ms_per_request" in limits:
            cpu = limits[f"{client}_cpu_ms_per_request"]
            lines.append(f"- {client} client CPU per request: {cpu:.3f} ms")
    versus = report.get("versus_aiohttp") or {}
    if versus:
        lines += [
            "",
            "Throughput against plain aiohttp in the same run:"
            f" {versus['deliveries_per_second']:,.0f} deliveries/s is"
            f" **{versus['rate_share']:.1%}** of its"
            f" {versus['aiohttp_requests_per_second']:,.0f} requests/s",
        ]
        if "cpu_share" in versus:
            lines[-1] += (
                f"; its {versus['aiohttp_cpu_ms_per_request']:.3f} ms CPU a request is"
                f" **{versus['cpu_share']:.1%}** of the worker's"
                f" {versus['worker_cpu_ms_per_delivery']:.3f} ms a delivery"
            )
        lines[-1] += "."
    if report["ratios"]:
        lines += ["", "Pipeline deliveries/s as a share of each limit:", ""]
        lines += [f"- {name}: {value:.1%}" for name, value in report["ratios"].items()]
    return lines


def _profile_lines(profiles: dict[str, Any]) -> list[str]:
    if not profiles:
        return []
    lines = ["", "Profiles (py-spy on each worker over the measured window):", ""]
    for name, p in profiles.items():
        if "error" in p:
            lines.append(f"- {name}: {p['error']}")
            continue
        top = ", ".join(f"`{row['name']}` {row['percent']:.1f} %" for row in p["self"][:3])
        lines.append(
            f"- [{name}]({p['summary']}) ({p['samples']:,} samples; raw: [{p['raw']}]({p['raw']}))"
            f"; most self time: {top}"
        )
    return lines


def _tracing(report: dict[str, Any]) -> str:
    tracing = report.get("tracing")
    if not tracing:
        return ", tracing off"
    return (
        f", **tracing on** (sample ratio {tracing['sample_ratio']:g}):"
        f" {tracing['spans_exported']:,} spans exported over OTLP/HTTP"
    )


def markdown(report: dict[str, Any]) -> str:
    scenarios: dict[str, dict[str, Any]] = report["scenarios"]
    m = report["machine"]
    lines = [
        f"Command: `{report['command']}` ({report['started_at']}, **{report['workers']} worker"
        f" process(es)** with the {report['http_client']} transport on"
        f" {report['worker_event_loop']}, {report['duration_s']:g} s per phase"
        + _tracing(report)
        + ")",
        "",
        f"Machine: {m['cores']} cores, {m['cpu_model']}, {m['memory_gb']} GB, Python "
        f"{m['python']}, Kafka {report['versions']['kafka']}; broker, workers, receiver and "
        f"load generator all on it; load average at start {m['load_average_at_start']}.",
        "",
        *_scenario_rows(scenarios),
    ]
    if "latency" in scenarios:
        lines += _latency_notes(scenarios["latency"])
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
    lines += _limit_lines(report)
    if report["targets"]:
        lines += [
            "",
            "Issue 15's targets:",
            "",
            "| target | goal | least acceptable | measured | met |",
            "| --- | --- | --- | ---: | --- |",
        ]
        for t in report["targets"]:
            met = t["met"] + (f" ({t['note']})" if t.get("note") else "")
            lines.append(
                f"| {t['target']} | {t['goal']} | {t['least_acceptable']} | {t['measured']:,}"
                f" | {met} |"
            )
    lines += _profile_lines(report.get("profiles") or {})
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
    axes.plot([500.0, 1000.0], [50.0, 100.0], "k_", markersize=20, label="p99 targets")
    axes.set_xlabel("offered rate (events/s, one endpoint)")
    axes.set_ylabel("handed to the producer → received (ms)")
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
