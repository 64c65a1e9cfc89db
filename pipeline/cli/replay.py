"""``velourcity replay``: send a window of domain events again (see :mod:`pipeline.replay`)."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from pipeline.endpoints import load_endpoints
from pipeline.kafka.connection import check_connection
from pipeline.replay import (
    GroupHasMembers,
    OffsetReset,
    Range,
    ReplayStats,
    check_arguments,
    check_window,
    replay_events,
    reset_offsets,
    resolve_target,
)
from pipeline.settings import load_settings
from pipeline.times import parse_time

TIME_HELP = "ISO-8601 (2026-11-28T10:00:00Z) or relative (-30m, -2h, -1d)."


def replay(
    since: Annotated[str, typer.Option("--since", help=f"Replay events from then. {TIME_HELP}")],
    until: Annotated[
        str | None, typer.Option("--until", help=f"Up to then (default: now). {TIME_HELP}")
    ] = None,
    account: Annotated[str | None, typer.Option("--account", help="Only this account's.")] = None,
    endpoint: Annotated[
        str | None, typer.Option("--endpoint", help="Only to this endpoint (implies its account).")
    ] = None,
    reset: Annotated[
        bool,
        typer.Option(
            "--reset-offsets",
            help="Move the fan-out group back to --since instead: every account, next worker "
            "start. Refused while a worker runs.",
        ),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would happen; change nothing.")
    ] = False,
) -> None:
    """Send events again: one account's or endpoint's (marked X-Velourcity-Replay: true, same
    ids), or everything through the fan-out group with --reset-offsets."""
    now = time.time()  # one "now" for both bounds, so -1h..-1s is a stable window
    since_ms = parse_time(since, now=now)
    until_ms = parse_time(until, now=now) if until is not None else None
    check_window(since_ms, until_ms)
    check_arguments(
        reset=reset, account_id=account, endpoint_id=endpoint, until_given=until is not None
    )
    settings = load_settings()
    check_connection(settings)
    if reset:
        try:
            resets = reset_offsets(settings, since_ms=since_ms, dry_run=dry_run)
        except GroupHasMembers as exc:
            typer.echo(f"refused: {exc}", err=True)
            raise typer.Exit(1) from exc
        _print_resets(resets, dry_run=dry_run)
        return
    target = resolve_target(load_endpoints(settings), account_id=account, endpoint_id=endpoint)
    ranges, stats = replay_events(
        settings, target, since_ms=since_ms, until_ms=until_ms, dry_run=dry_run
    )
    if dry_run:
        _print_plan(ranges, stats)
    who = endpoint or target.account_id
    typer.echo(
        f"{'dry run: ' if dry_run else ''}{who}: {stats.read} events read, "
        f"{stats.skipped} undecodable skipped, {stats.matched} matched, "
        f"{stats.deliveries} deliveries {'would be queued' if dry_run else 'queued'}"
    )


def _print_plan(ranges: list[Range], stats: ReplayStats) -> None:
    for r in ranges:
        count = stats.per_partition[(r.topic, r.partition)]
        typer.echo(
            f"{r.topic} partition {r.partition}: offsets {r.start}..{r.stop}, "
            f"{count} events would be replayed"
        )


def _print_resets(resets: list[OffsetReset], *, dry_run: bool) -> None:
    for r in resets:
        old = "none" if r.old is None else str(r.old)
        typer.echo(f"{r.topic} partition {r.partition}: {old} -> {r.new}")
    if dry_run:
        typer.echo("dry run: no offsets changed")
    else:
        typer.echo(f"reset {len(resets)} partitions; the next worker fans out from there")
