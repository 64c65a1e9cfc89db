"""``velourcity deliveries``: the attempt log."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

import typer
from confluent_kafka import Consumer

from pipeline.delivery.record import Attempt
from pipeline.kafka.connection import librdkafka_config
from pipeline.settings import load_settings
from pipeline.topics import ATTEMPTS

app = typer.Typer(help="Deliveries and their attempts.", no_args_is_help=True)


def format_attempt(a: Attempt) -> str:
    at = datetime.fromtimestamp(a.at / 1000, UTC).strftime("%H:%M:%S.%f")[:-3]
    answer = str(a.status) if a.status is not None else (a.error or "-")
    line = (
        f"{at}  {a.event_type:22} attempt {a.attempt}  {a.endpoint_id}  {answer:>5}"
        f"  {a.latency_ms:7.1f} ms  {a.outcome}"
    )
    if a.next_attempt_at:
        due = datetime.fromtimestamp(a.next_attempt_at / 1000, UTC).strftime("%H:%M:%S")
        line += f" (next at {due})"
    return f"{line}  {a.delivery_id}  {a.event_id}"


@app.command()
def tail(
    endpoint: Annotated[str | None, typer.Option("--endpoint", help="Only this endpoint.")] = None,
    from_beginning: Annotated[bool, typer.Option(help="Start at the oldest attempt.")] = False,
) -> None:
    """Follow the attempt log: one line per attempt, with what happens next."""
    settings = load_settings()
    consumer = Consumer(
        {
            **librdkafka_config(settings),
            "group.id": f"tail-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest" if from_beginning else "latest",
        }
    )
    consumer.subscribe([settings.topic(ATTEMPTS)])
    try:
        while True:
            message = consumer.poll(0.5)
            if message is None or message.error() is not None:
                continue
            attempt = Attempt.from_bytes(message.value() or b"{}")
            if endpoint is None or attempt.endpoint_id == endpoint:
                typer.echo(format_attempt(attempt))
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
