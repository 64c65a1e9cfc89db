"""The ``velourcity`` command line. Each concept has its own module and sub-command group."""

from __future__ import annotations

import sys

import typer

from pipeline.cli import events, topics
from pipeline.exceptions import VelourcityError

app = typer.Typer(
    name="velourcity",
    help="Velourcity Webhooks: signed webhook delivery on Kafka.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(topics.app, name="topics")
app.command("trigger")(events.trigger)


def main() -> None:
    try:
        app()
    except VelourcityError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)


__all__ = ["app", "main"]
