"""``velourcity listen``: webhooks on a developer's machine without a public URL (the
counterpart of ``stripe listen``; no ngrok needed).

It registers a *listen* endpoint for the account (workers fan events out to it as to any
endpoint, but never POST to it), reads that endpoint's deliveries straight from the
deliveries topic, signs each exactly as a worker would, forwards it to the local URL and
prints one line per delivery with the local answer. Ctrl-C deletes the endpoint.

The endpoint is made and deleted through the control plane in PostgreSQL and its outbox
(:mod:`pipeline.controlplane.commands`), like any other: the API lists it while it is there.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from types import FrameType
from typing import Annotated

import httpx
import typer
from confluent_kafka import Consumer, KafkaError, TopicPartition

from pipeline.controlplane import commands
from pipeline.delivery.record import Delivery
from pipeline.delivery.signing import webhook_headers
from pipeline.endpoints import Endpoint, new_endpoint
from pipeline.kafka.connection import librdkafka_config
from pipeline.kafka_retry import retrying
from pipeline.settings import Settings, load_settings
from pipeline.topics import DELIVERIES

FORWARD_TIMEOUT = 10.0


def listen(
    account: Annotated[str, typer.Option("--account", help="The partner account to listen to.")],
    forward_to: Annotated[
        str, typer.Option("--forward-to", help="Local URL, e.g. http://localhost:3000/webhooks.")
    ],
    events: Annotated[
        str | None, typer.Option("--events", help="Comma-separated event types (default: all).")
    ] = None,
) -> None:
    """Forward an account's webhooks to a local URL, signed as in production."""
    settings = load_settings()
    if not forward_to.startswith(("http://", "https://")):
        raise typer.BadParameter("--forward-to takes an http(s) URL", param_hint="--forward-to")
    started_ms = int(time.time() * 1000)
    endpoint, reused = _endpoint(settings, account, forward_to, events)
    if not reused:
        commands.put_endpoints(settings, [endpoint])
    typer.echo(
        f"Ready! Forwarding {account}'s webhooks to {forward_to} (endpoint {endpoint.id}).\n"
        f"Your webhook signing secret is {endpoint.secret}\n"
        "Ctrl-C to stop.",
        err=True,
    )
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with httpx.Client(timeout=FORWARD_TIMEOUT) as client:
            for delivery in _deliveries(settings, endpoint.id, started_ms):
                typer.echo(_forward(client, endpoint, delivery, forward_to))
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        commands.delete_endpoint(settings, endpoint)
        typer.echo(f"Stopped; endpoint {endpoint.id} deleted.", err=True)


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _endpoint(
    settings: Settings, account: str, forward_to: str, events: str | None
) -> tuple[Endpoint, bool]:
    """A listen endpoint left by an earlier session for the same target, or a new one."""
    wanted = new_endpoint(
        settings,
        account_id=account,
        url=forward_to,
        event_types=events.split(",") if events else None,
        description="velourcity listen",
        listen=True,
    )
    for existing in commands.endpoints_of(settings, account):
        if (
            existing.listen
            and existing.enabled
            and (existing.account_id, existing.url, existing.event_types)
            == (wanted.account_id, wanted.url, wanted.event_types)
        ):
            return existing, True
    return wanted, False


def _deliveries(settings: Settings, endpoint_id: str, since_ms: int) -> Iterator[Delivery]:
    """The endpoint's deliveries written from ``since_ms`` on, as they come (first tries and
    retries alike: the worker never sends them, so each record is one delivery to forward)."""
    topic = settings.topic(DELIVERIES)
    consumer = Consumer(
        {
            **librdkafka_config(settings),
            "group.id": f"listen-{uuid.uuid4().hex}",  # assigned, never joins nor commits
            "enable.auto.commit": False,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        start = [TopicPartition(topic, p, since_ms) for p in partitions]
        offsets = retrying(
            lambda: consumer.offsets_for_times(start, timeout=30), what="listen offsets"
        )
        consumer.assign(offsets)
        while True:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if (error := message.error()) is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    typer.echo(f"kafka: {error.str()}", err=True)
                continue
            if message.key() == endpoint_id.encode():
                yield Delivery.from_bytes(message.value() or b"{}")
    finally:
        consumer.close()


def _forward(client: httpx.Client, endpoint: Endpoint, delivery: Delivery, url: str) -> str:
    body = delivery.body
    now_ms = int(time.time() * 1000)
    headers = webhook_headers(
        delivery, body, endpoint.signing_secrets(now_ms), timestamp=now_ms // 1000
    )
    started = time.perf_counter()
    try:
        answer = str(client.post(url, content=body, headers=headers).status_code)
    except httpx.HTTPError as exc:
        answer = f"failed: {type(exc).__name__}"
    took = (time.perf_counter() - started) * 1000
    return f"{delivery.event_type:22} {delivery.event_id}  → {answer}  {took:.0f} ms"
