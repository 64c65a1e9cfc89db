"""``velourcity db``: the PostgreSQL schema (versioned SQL files, pipeline/db/migrations/)."""

from __future__ import annotations

import typer

from pipeline.settings import load_settings

app = typer.Typer(help="The PostgreSQL database (VELOURCITY_DATABASE_URL).", no_args_is_help=True)


@app.command("migrate")
def migrate() -> None:
    """Apply the migrations the database lacks, in order, and print each one applied; then
    import the compacted accounts and endpoints topics once (into the empty control plane)."""
    from pipeline.controlplane.importer import import_from_kafka
    from pipeline.db import migrate as run  # psycopg: imported only for database commands

    settings = load_settings()
    applied = run(settings)
    for migration in applied:
        typer.echo(f"applied  {migration.label}")
    if not applied:
        typer.echo("up to date")
    imported = import_from_kafka(settings)
    if imported is None:
        typer.echo("control plane: imported from Kafka before, nothing to do")
    else:
        typer.echo(f"imported {imported[0]} accounts, {imported[1]} endpoints from Kafka")
