"""``velourcity trigger``: publish realistic sample events (the counterpart of `stripe trigger`)."""

from __future__ import annotations

from typing import Annotated

import orjson
import typer

from pipeline.events.samples import sample_event
from pipeline.events.types import EVENT_TYPES, check_event_type
from pipeline.kafka.connection import check_connection
from pipeline.publisher import Publisher
from pipeline.settings import load_settings


def trigger(
    event_type: Annotated[str, typer.Argument(help=f"One of: {', '.join(EVENT_TYPES)}, or 'all'.")],
    account: Annotated[str, typer.Option("--account", help="Account that owns the events.")],
    count: Annotated[
        int, typer.Option(min=1, help="How many events (of each type for 'all').")
    ] = 1,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object per event.")
    ] = False,
) -> None:
    """Publish sample events to the domain topics, batched, and wait for the broker's acks."""
    types = list(EVENT_TYPES) if event_type == "all" else [check_event_type(event_type)]
    events = {}
    settings = load_settings()
    check_connection(settings)
    with Publisher(settings) as publisher:
        for _ in range(count):
            for t in types:
                event = sample_event(t, account)
                events[event["id"]] = event
                publisher.send(event)
        published = publisher.flush()
    for p in published:
        if as_json:
            line = {
                "id": p.event_id,
                "type": p.event_type,
                "account_id": account,
                "topic": p.topic,
                "partition": p.partition,
                "offset": p.offset,
                "order_id": events[p.event_id]["data"]["order_id"],
            }
            typer.echo(orjson.dumps(line).decode())
    if not as_json:
        typer.echo(f"published {len(published)} events for {account}")
