"""``velourcity bench``: the benchmarks of issues 8 and 15 against the running broker."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer

from velourcity_bench.scenarios import LATENCY_RATES, SCENARIOS

DEFAULT_RATES = ",".join(str(rate) for rate in LATENCY_RATES)


def bench(
    scenario: Annotated[
        str,
        typer.Option("--scenario", help=f"One of: {', '.join(SCENARIOS)}, or 'all'."),
    ] = "all",
    duration: Annotated[
        float, typer.Option(min=1, help="Seconds of load per phase (a latency rate is one).")
    ] = 30.0,
    workers: Annotated[int, typer.Option(min=1, help="`velourcity worker` processes.")] = 1,
    http_client: Annotated[
        str,
        typer.Option(
            help="The workers' VELOURCITY_HTTP_CLIENT: aiohttp (production's default) or"
            " httpx (httpx's own connection pool)."
        ),
    ] = "aiohttp",
    event_loop: Annotated[
        str,
        typer.Option(
            help="The workers' VELOURCITY_EVENT_LOOP: uvloop (production's default) or asyncio."
        ),
    ] = "uvloop",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as one JSON object, last.")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Where latest.json, latest.md, the plot and the profiles are written"
            " (default: .local/bench/<UTC timestamp>/, not tracked; the committed figures"
            " are --out benchmarks/results)."
        ),
    ] = None,
    profile: Annotated[
        bool,
        typer.Option(
            "--profile",
            help="py-spy on every worker during each measured window; raw folded stacks and"
            " a summary under <out>/profiles/, linked from the report.",
        ),
    ] = False,
    rates: Annotated[
        str,
        typer.Option(
            help="The latency scenario's offered rates (events/s), comma-separated.",
        ),
    ] = DEFAULT_RATES,
    tracing: Annotated[
        bool,
        typer.Option(
            "--tracing",
            help="Tracing on: the workers and the load generator export their spans over"
            " OTLP/HTTP to a collector the bench runs on 127.0.0.1 (what tracing costs;"
            " VELOURCITY_TRACE_SAMPLE_RATIO samples).",
        ),
    ] = False,
) -> None:
    """Measure throughput, latency, CPU and memory on the running broker
    (VELOURCITY_KAFKA_BOOTSTRAP) with the pipeline's own workers and a fast local receiver;
    write the report under --out."""
    from pipeline.settings import load_settings
    from velourcity_bench import run_bench  # imports the scenarios' machinery only here

    if scenario != "all" and scenario not in SCENARIOS:
        choices = ", ".join(SCENARIOS)
        raise typer.BadParameter(f"unknown scenario {scenario!r}; one of: {choices}, all")

    if http_client not in ("httpx", "aiohttp"):
        raise typer.BadParameter(f"--http-client is httpx or aiohttp, not {http_client!r}")
    try:
        latency_rates = [int(r) for r in rates.split(",") if r.strip()]
    except ValueError:
        latency_rates = []
    if not latency_rates or min(latency_rates) <= 0:
        raise typer.BadParameter(f"--rates takes positive events/s, e.g. 100,500; not {rates!r}")

    def progress(line: str) -> None:
        typer.echo(line, err=as_json)

    result = run_bench(
        scenario,
        duration=duration,
        workers=workers,
        bootstrap=load_settings().kafka_bootstrap,
        out=out,
        command="velourcity " + shlex.join(sys.argv[1:]),
        http_client=http_client,
        event_loop=event_loop,
        profile=profile,
        latency_rates=latency_rates,
        tracing=tracing,
        progress=progress,
    )
    if as_json:
        typer.echo(orjson.dumps(result).decode())
    else:
        typer.echo(Path(result["files"]["markdown"]).read_text())
        typer.echo(f"report: {', '.join(result['files'].values())}")
