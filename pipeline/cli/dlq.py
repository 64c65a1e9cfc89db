"""``velourcity dlq``: inspect and redrive the dead-letter topic."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import orjson
import typer

from pipeline.deadletters import read_dead_letters, redrive
from pipeline.settings import load_settings
from pipeline.times import parse_time

app = typer.Typer(help="Dead letters: deliveries that used up every retry.", no_args_is_help=True)

EndpointOption = Annotated[str | None, typer.Option("--endpoint", help="Only this endpoint's.")]
SinceOption = Annotated[
    str | None, typer.Option("--since", help="Dead-lettered since (ISO-8601 or -2h, -30m, -1d).")
]


@app.command("list")
def list_(
    endpoint: EndpointOption = None,
    since: SinceOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """List dead letters with their reason and attempt history."""
    since_ms = parse_time(since) if since else 0
    for letter in read_dead_letters(load_settings(), endpoint_id=endpoint, since_ms=since_ms):
        d = letter.delivery
        if as_json:
            line = {
                "delivery_id": d.delivery_id,
                "event_id": d.event_id,
                "event_type": d.event_type,
                "endpoint_id": d.endpoint_id,
                "reason": d.dead_letter_reason,
                "dead_lettered_at": letter.dead_lettered_at,
                "history": d.history,
            }
            typer.echo(orjson.dumps(line).decode())
            continue
        at = datetime.fromtimestamp(letter.dead_lettered_at / 1000, UTC).isoformat(
            timespec="seconds"
        )
        typer.echo(
            f"{at}  {d.delivery_id}  {d.event_type:22} {d.endpoint_id}  "
            f"{len(d.history)} attempts  {d.dead_letter_reason}"
        )


@app.command("redrive")
def redrive_(endpoint: EndpointOption = None, since: SinceOption = None) -> None:
    """Send dead letters back for delivery: attempt 1 of a fresh schedule, same ids."""
    settings = load_settings()
    since_ms = parse_time(since) if since else 0
    letters = list(read_dead_letters(settings, endpoint_id=endpoint, since_ms=since_ms))
    typer.echo(f"redriven {redrive(settings, letters)} deliveries")
