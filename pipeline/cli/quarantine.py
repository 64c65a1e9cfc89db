"""``velourcity quarantine``: inspect the quarantine topic and write records back."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import orjson
import typer

from pipeline.settings import load_settings
from pipeline.times import parse_time

app = typer.Typer(
    help="Quarantined records: input the pipeline could not take, and deliveries a bug of ours"
    " stopped too often.",
    no_args_is_help=True,
)

ReasonOption = Annotated[
    str | None,
    typer.Option(
        "--reason", help="Only this reason (e.g. internal_error, invalid_event, unknown_schema)."
    ),
]
SinceOption = Annotated[
    str | None, typer.Option("--since", help="Quarantined since (ISO-8601 or -2h, -30m, -1d).")
]


@app.command("list")
def list_(
    reason: ReasonOption = None,
    since: SinceOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """List quarantined records with where they came from and why."""
    from pipeline.quarantine import read_quarantine

    since_ms = parse_time(since) if since else 0
    for r in read_quarantine(load_settings(), reason=reason, since_ms=since_ms):
        if as_json:
            line = {
                "id": f"{r.partition}:{r.offset}",
                "reason": r.reason,
                "error": r.error,
                "source_topic": r.source_topic,
                "quarantined_at": r.at,
                "bytes": len(r.value),
            }
            typer.echo(orjson.dumps(line).decode())
            continue
        at = datetime.fromtimestamp(r.at / 1000, UTC).isoformat(timespec="seconds")
        typer.echo(f"{at}  {r.partition}:{r.offset}  {r.reason:22} {r.source_topic}  {r.error}")


@app.command("redrive")
def redrive_(reason: ReasonOption = None, since: SinceOption = None) -> None:
    """Write quarantined records back, untouched, to the topic each came from (after a fix)."""
    from pipeline.quarantine import read_quarantine, redrive

    settings = load_settings()
    since_ms = parse_time(since) if since else 0
    records = list(read_quarantine(settings, reason=reason, since_ms=since_ms))
    typer.echo(f"redriven {redrive(settings, records)} records")
