"""``velourcity db``: the PostgreSQL schema (versioned SQL files, pipeline/db/migrations/)."""

from __future__ import annotations

import typer

from pipeline.settings import load_settings

app = typer.Typer(help="The PostgreSQL database (VELOURCITY_DATABASE_URL).", no_args_is_help=True)


@app.command("migrate")
def migrate() -> None:
    """Apply the migrations the database lacks, in order, and print each one applied."""
    from pipeline.db import migrate as run  # psycopg: imported only for database commands

    applied = run(load_settings())
    for migration in applied:
        typer.echo(f"applied  {migration.label}")
    if not applied:
        typer.echo("up to date")
