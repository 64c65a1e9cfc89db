"""``velourcity topics``: create and list the pipeline's topics."""

from __future__ import annotations

import typer

from pipeline.kafka.connection import check_connection
from pipeline.settings import load_settings
from pipeline.topics import create_topics, pipeline_topics, replication

app = typer.Typer(help="The pipeline's Kafka topics.", no_args_is_help=True)


@app.command("create")
def create() -> None:
    """Create every pipeline topic with its configured partition count (idempotent)."""
    settings = load_settings()
    brokers = check_connection(settings)
    factor, min_insync = replication(settings, brokers)
    typer.echo(
        f"{brokers} broker(s): replication factor {factor}, min.insync.replicas {min_insync}"
    )
    specs = {s.name: s for s in pipeline_topics(settings)}
    for name, outcome in create_topics(settings).items():
        typer.echo(f"{outcome:8} {name} ({specs[name].partitions} partitions)")


@app.command("list")
def list_() -> None:
    """Print the topics the pipeline uses, with partition counts and config."""
    for spec in pipeline_topics(load_settings()):
        extra = " ".join(f"{k}={v}" for k, v in spec.config.items())
        typer.echo(f"{spec.name}\t{spec.partitions}\t{extra}".rstrip())
