"""``velourcity chaos``: the fault-injection suite (:mod:`velourcity_chaos`), its table printed
and saved under ``reliability/results/``."""

from __future__ import annotations

import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer

from pipeline.exceptions import ConfigurationError

RESULTS = Path("reliability") / "results"


_SCENARIO_HELP = (
    "worker-crashes, broker-restart, receiver-outage, poison-input, rebalance, api-abuse, "
    "failover (or 7: failover-leader and failover-controller, on the three-broker cluster), or all"
)
_GROUPS = {"failover": ["failover-leader", "failover-controller"]}
_GROUPS["7"] = _GROUPS["failover"]


def chaos(
    scenario: Annotated[str, typer.Option(help=_SCENARIO_HELP)] = "all",
    events: Annotated[
        int | None, typer.Option(help="events per scenario (default: each one's own)")
    ] = None,
    ci: Annotated[
        bool, typer.Option("--ci", help="the short form: fewer events, shorter faults")
    ] = False,
    results: Annotated[Path, typer.Option(help="where the JSON and Markdown tables go")] = RESULTS,
    logs: Annotated[Path | None, typer.Option(help="keep worker and receiver logs here")] = None,
) -> None:
    """Run fault scenarios against real workers and print what was lost, duplicated and delayed.

    Uses the broker of VELOURCITY_KAFKA_BOOTSTRAP (topics under a prefix of each run's own);
    the broker-restart scenario starts and stops a throwaway broker of its own, the failover
    scenario (7) the local three-broker cluster (scripts/kafka-cluster.sh) unless it runs."""
    from pipeline.settings import load_settings
    from velourcity_chaos.api_abuse import api_abuse
    from velourcity_chaos.failover import failover_controller, failover_leader
    from velourcity_chaos.report import markdown_table, save
    from velourcity_chaos.scenarios import SCENARIOS, Options

    every = {
        **SCENARIOS,
        "api-abuse": api_abuse,
        "failover-leader": failover_leader,
        "failover-controller": failover_controller,
    }
    names = list(every) if scenario == "all" else _GROUPS.get(scenario, [scenario])
    if unknown := [n for n in names if n not in every]:
        raise ConfigurationError(f"unknown scenario {unknown[0]!r}; known: {', '.join(every)}, all")
    directory = logs or Path(tempfile.mkdtemp(prefix="velourcity-chaos-"))
    options = Options(
        bootstrap=load_settings().kafka_bootstrap, directory=directory, events=events, ci=ci
    )
    tallies = []
    for name in names:
        started = time.strftime("%H:%M:%S")
        typer.echo(f"[{started}] {name} ...", err=True)
        tally = every[name](options)
        typer.echo(f"  {tally.verdict}: {'; '.join(tally.problems) or 'targets met'}", err=True)
        tallies.append(tally)
    command = (
        "velourcity chaos " + shlex.join(sys.argv[2:]) if len(sys.argv) > 2 else "velourcity chaos"
    )
    json_path, md_path = save(tallies, results, command=command.strip())
    typer.echo(markdown_table(tallies))
    typer.echo(f"\nsaved {json_path} and {md_path}; logs in {directory}")
    if any(t.problems for t in tallies):
        raise typer.Exit(1)
