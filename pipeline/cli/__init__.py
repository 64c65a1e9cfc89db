"""The ``velourcity`` command line. Each concept has its own module and sub-command group."""

from __future__ import annotations

import importlib
import importlib.util
import sys

import typer

from pipeline.cli import db, deliveries, dlq, endpoints, events, portal, quarantine, topics
from pipeline.cli.listen import listen
from pipeline.cli.receiver import receiver
from pipeline.cli.replay import replay
from pipeline.demo import demo
from pipeline.exceptions import VelourcityError

app = typer.Typer(
    name="velourcity",
    help="Velourcity Webhooks: signed webhook delivery on Kafka.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(topics.app, name="topics")
app.add_typer(db.app, name="db")
app.add_typer(endpoints.app, name="endpoints")
app.add_typer(deliveries.app, name="deliveries")
app.add_typer(dlq.app, name="dlq")
app.add_typer(quarantine.app, name="quarantine")
app.add_typer(portal.app, name="portal-links")
app.command("trigger")(events.trigger)
app.command("receiver")(receiver)
app.command("listen")(listen)
app.command("demo")(demo)
app.command("replay")(replay)


DEV_TOOLS = {
    "bench": ("velourcity_bench.cli", "Benchmark the pipeline on the running broker."),
    "chaos": ("velourcity_chaos.cli", "Run the fault-injection suite against real workers."),
}
"""Commands of the development tools (tools/, the ``velourcity-devtools`` distribution that
``make install`` installs from a checkout; the server wheel does not ship them)."""


def _dev_tool(name: str, module: str, summary: str) -> None:
    if importlib.util.find_spec(module.partition(".")[0]) is not None:
        app.command(name)(getattr(importlib.import_module(module), name))
        return

    @app.command(name, help=f"{summary} (a development tool: not installed)")
    def missing() -> None:
        raise VelourcityError(
            f"velourcity {name} is a development tool, not part of the server package: "
            "run it from a checkout after `make install` (it installs tools/, velourcity-devtools)"
        )


for _name, (_module, _summary) in DEV_TOOLS.items():
    _dev_tool(_name, _module, _summary)


@app.command()
def worker() -> None:
    """Run the fan-out and sender agents (several workers share the work)."""
    from pipeline.settings import load_settings
    from pipeline.worker import run_worker  # faust is heavy: import it only here

    run_worker(load_settings())


@app.command()
def api(
    host: str = "127.0.0.1",
    port: int = 8080,
    no_sink: bool = typer.Option(
        False, "--no-sink", help="Do not run the delivery log sink here (run velourcity log-sink)"
    ),
    no_relay: bool = typer.Option(
        False, "--no-relay", help="Do not run an outbox relay here (run velourcity outbox-relay)"
    ),
) -> None:
    """Serve the REST API and the dashboard; runs the delivery log sink and an outbox relay
    too unless --no-sink / --no-relay."""
    from pipeline.api.server import serve  # fastapi + uvicorn: import them only here
    from pipeline.kafka.connection import check_connection
    from pipeline.settings import load_settings

    settings = load_settings()
    check_connection(settings)
    serve(settings, host=host, port=port, run_sink=not no_sink, run_relay=not no_relay)


@app.command("log-sink")
def log_sink() -> None:
    """Write the deliveries and attempts topics into the delivery log (PostgreSQL) on its own."""
    from pipeline.deliverylog.sink import run_log_sink
    from pipeline.kafka.connection import check_connection
    from pipeline.observability import configure_logging
    from pipeline.settings import load_settings

    settings = load_settings()
    check_connection(settings)
    configure_logging(settings)
    run_log_sink(settings)


@app.command("outbox-relay")
def outbox_relay(
    fault: str | None = typer.Option(None, "--fault", hidden=True, help="Tests only."),
) -> None:
    """Carry committed control-plane changes (PostgreSQL's outbox) to the compacted topics, on
    its own (one relay at a time works; the others wait to take over)."""
    from pipeline.controlplane.relay import FAULTS, run_relay
    from pipeline.observability import configure_logging
    from pipeline.settings import load_settings

    chosen = next((f for f in FAULTS if f == fault), None)
    if fault is not None and chosen is None:
        raise typer.BadParameter(f"one of {', '.join(FAULTS)}", param_hint="--fault")
    settings = load_settings()
    # no connection check: the relay is made to outlast a broker outage, retrying with
    # backoff and marking nothing sent until the broker acknowledges it
    configure_logging(settings)
    run_relay(settings, fault=chosen)


def main() -> None:
    try:
        app()
    except VelourcityError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)


__all__ = ["app", "main"]
