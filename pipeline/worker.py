"""The worker: the Faust fan-out agent, and the sender (:mod:`pipeline.delivery.dispatcher`)
running as a service of the same Faust worker.

The app is built by :func:`create_app` from settings; nothing is created at import time.

At-least-once in the fan-out rests on two rules, kept by :func:`_agent`:

* events are taken in batches (``stream.take_events``), which Faust acks only after the batch
  body returns, and offsets are committed only for acked events;
* a batch body returns only after every record it produced was acknowledged by the broker.
  Errors inside one record become records too (quarantine, retry tier); an error producing
  them stops the worker before the batch is acked, so the batch is read again after restart.

and on a third, kept by the app's consumer (:mod:`pipeline.kafka.fanout_consumer`): an ack
counts only for an event handed out since the last rebalance or seek, so an event fetched before
a rebalance can never make offsets committable that were not fanned out (issue 17).
"""

from __future__ import annotations

import asyncio
import gc
import os
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import faust
import structlog
from faust.types import EventT, StreamT

from pipeline import tracing
from pipeline.delivery.copies import FANOUT_HEADER
from pipeline.delivery.dispatcher import AccountEndpoints, Dispatcher
from pipeline.delivery.handler import INTERNAL_RETRIES, DeliveryHandler
from pipeline.delivery.http import new_http_sender
from pipeline.delivery.record import Delivery
from pipeline.endpoints.store import EndpointCache
from pipeline.events.codec import DecodedEvent, decode
from pipeline.events.registry import SchemaRegistry, default_registry
from pipeline.exceptions import DecodeError, InvalidInput
from pipeline.fanout import fan_out
from pipeline.health import HealthCache
from pipeline.kafka.config import producer_config
from pipeline.kafka.connection import check_connection, faust_broker
from pipeline.kafka.fanout_consumer import FAUST_FETCH_WAIT_MS, use_fanout_consumer
from pipeline.kafka.producer import AsyncProducer, Output
from pipeline.observability import INTERNAL_ERRORS, QUARANTINED, configure_logging, serve_metrics
from pipeline.quarantine import quarantine_record
from pipeline.settings import Settings
from pipeline.topics import DELIVERIES, replication

log = structlog.get_logger(__name__)

INTERNAL_BACKOFF = 0.1
"""Seconds before the fan-out of an event that hit a bug of ours is tried again (x4 each
time, :data:`~pipeline.delivery.handler.INTERNAL_RETRIES` times; then it is quarantined as
``internal_error``, for ``velourcity quarantine redrive`` once fixed)."""

GC_YOUNG_THRESHOLD = 50_000
"""Allocations between two collections of the youngest generation (CPython's default: 700).
With the default, the records in flight (a delivery lives ~1-100 ms) survived the young
collections and filled the oldest generation, whose collection ran every ~2 s under load and
stopped the worker's loop for 80-120 ms each time (~7 % of its CPU went to the collector):
its requests' answers waited, a fast endpoint's wait for a turn ran out and its deliveries
were deferred to a retry tier (README, Benchmarks: "The collector's pauses")."""

BATCH_MAX = 1000
BATCH_WITHIN = 0.005
"""Seconds a batch waits to fill: every event waits up to this long at fan-out, so it is short
(under load a batch fills sooner: ~50 events a batch at 10,000/s)."""


def create_app(settings: Settings, *, endpoints: EndpointCache, brokers: int = 1) -> faust.App:
    app = faust.App(
        settings.group("velourcity-webhooks"),
        **faust_broker(settings),
        store="memory://",
        datadir=os.path.join(tempfile.gettempdir(), f"{settings.group('velourcity')}-worker"),
        web_enabled=False,
        topic_replication_factor=replication(settings, brokers)[0],
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_commit_interval=settings.commit_interval,
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=settings.session_timeout / 4,
        producer_max_request_size=8 * 1024 * 1024,
        stream_wait_empty=False,
        worker_redirect_stdouts=False,
    )
    # no offset committed past an event not fanned out (issue 17); fetches that wait for records
    # (a sender-only worker's Faust consumer has nothing to fan out: it keeps Faust's long wait)
    fanning_out = settings.worker_role != "sender"
    fetch_wait_ms = settings.fanout_fetch_wait_ms if fanning_out else FAUST_FETCH_WAIT_MS
    use_fanout_consumer(app, fetch_wait_ms=fetch_wait_ms)
    registry = default_registry()
    produce = _producer(AsyncProducer(producer_config(settings)))

    domain = app.topic(
        settings.topic(settings.orders_topic),
        settings.topic(settings.payments_topic),
        key_serializer="raw",
        value_serializer="raw",
    )

    fanout_batch = FanoutBatch(settings, registry, endpoints)
    if fanning_out:
        _agent(app, domain, "fanout", endpoints, fanout_batch, produce, settings.http_timeout + 10)
    return app


class FanoutBatch:
    """The fan-out agent's body: a batch of domain events → the records to produce (the
    deliveries, and the quarantine records of what cannot be fanned out).

    Bad input (undecodable, invalid) is quarantined at once with its reason. A bug of ours is
    not the input's fault: it is counted and tried again :data:`INTERNAL_RETRIES` times with a
    growing backoff, then quarantined as ``internal_error`` (``velourcity quarantine redrive``
    sends it again once fixed), so one event never stops the partition for good."""

    def __init__(
        self,
        settings: Settings,
        registry: SchemaRegistry,
        endpoints: AccountEndpoints,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._settings = settings
        self._registry = registry
        self._endpoints = endpoints
        self._sleep = sleep
        self._deliveries_topic = settings.topic(DELIVERIES)

    async def __call__(self, events: Sequence[EventT[Any]]) -> list[Output]:
        outputs: list[Output] = []
        for event in events:
            outputs.extend(await self._one(event))
        return outputs

    async def _one(self, event: EventT[Any]) -> list[Output]:
        settings, message = self._settings, event.message
        for tries in range(INTERNAL_RETRIES + 1):
            try:
                decoded = decode(message.value, self._registry)
                account = decoded.event["account_id"]
                deliveries = self._fan_out(decoded, account, _traceparent(message.headers))
                break
            except DecodeError as exc:  # bad input: set aside with its reason
                return [_quarantine(settings, event, exc.reason, exc)]
            except InvalidInput as exc:
                return [_quarantine(settings, event, "invalid_event", exc)]
            except Exception as exc:  # a bug of ours: not the input's fault
                INTERNAL_ERRORS.labels("fanout").inc()
                log.exception("fan-out failed", offset=message.offset, tries=tries + 1)
                if tries == INTERNAL_RETRIES:
                    return [_quarantine(settings, event, "internal_error", exc)]
                await self._sleep(INTERNAL_BACKOFF * 4**tries)
        return [
            Output(
                self._deliveries_topic,
                d.endpoint_id.encode(),
                d.to_bytes(),
                ((FANOUT_HEADER, d.delivery_id.encode()),),  # its copies are not sent again
            )
            for d in deliveries
        ]

    def _fan_out(
        self, decoded: DecodedEvent, account: str, traceparent: str | None
    ) -> list[Delivery]:
        endpoints = self._endpoints.for_account(account)
        if not tracing.enabled():  # off: no span, the event's own context passed on
            return fan_out(decoded, endpoints, traceparent=traceparent)
        name = f"fanout {decoded.event_type}"
        attributes = {"velourcity.event_id": decoded.event["id"], "velourcity.account": account}
        with tracing.span(name, traceparent, "CONSUMER", attributes) as current:
            deliveries = fan_out(
                decoded, endpoints, traceparent=tracing.traceparent_of(current, traceparent)
            )
            if current is not None:
                current.set_attribute("velourcity.deliveries", len(deliveries))
            return deliveries


def _traceparent(headers: Any) -> str | None:
    """The event's ``traceparent`` Kafka header, if well-formed."""
    pairs = headers.items() if isinstance(headers, dict) else headers or ()
    for key, value in pairs:
        if key == tracing.HEADER and isinstance(value, bytes | str):
            text = value.decode(errors="replace") if isinstance(value, bytes) else value
            return tracing.valid(text)
    return None


Produce = Callable[[list[Output]], Awaitable[None]]


def _agent(
    app: faust.App,
    channel: Any,
    name: str,
    endpoints: EndpointCache,
    body: Callable[[Sequence[EventT[Any]]], Awaitable[list[Output]]],
    produce: Produce,
    drain_seconds: float,
) -> None:
    async def handle(events: Sequence[EventT[Any]]) -> None:
        await produce(await body(events))  # acked by the broker before the events are acked

    async def agent(stream: StreamT[Any]) -> None:
        await endpoints.wait_ready_async()
        batches = stream.take_events(BATCH_MAX, within=BATCH_WITHIN)  # type: ignore[attr-defined]
        async for events in batches:
            # Faust acks a batch's events whenever this loop body ends, even by an exception or
            # a cancellation (shutdown). So the batch runs shielded: on shutdown it drains
            # (in-flight requests finish, results are produced); a batch that cannot finish in
            # time, or fails, ends the process before anything is acked.
            task = asyncio.ensure_future(handle(events))
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                try:
                    await asyncio.wait_for(task, drain_seconds)
                except BaseException:
                    log.warning("batch not drained in time; exiting without acking it", agent=name)
                    os._exit(75)
                raise
            except BaseException:
                log.critical("batch failed; exiting without acking it", agent=name, exc_info=True)
                os._exit(70)

    agent.__name__ = agent.__qualname__ = name.replace(":", "_").replace(".", "_")
    app.agent(channel, name=name, concurrency=1)(agent)


def _producer(producer: AsyncProducer) -> Produce:
    """Every record of a batch handed to librdkafka at once (no await per record), then one
    wait for all the acks."""

    async def produce(outputs: list[Output]) -> None:
        if not outputs:
            return
        try:
            await producer.send(outputs)
        except BaseException:
            # The broker did not take what this batch produced. Acking the batch now would
            # lose it; exit instead, so the batch is read again after restart.
            log.critical("producing a batch's records failed; stopping the worker", exc_info=True)
            os._exit(70)

    return produce


def _quarantine(settings: Settings, event: EventT[Any], reason: str, exc: Exception) -> Output:
    message = event.message
    QUARANTINED.labels(reason).inc()
    log.warning(
        "record quarantined",
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        reason=reason,
        error=str(exc)[:300],
    )
    return quarantine_record(
        settings,
        value=message.value,
        key=message.key,
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        reason=reason,
        error=f"{type(exc).__name__}: {exc}",
    )


def run_worker(settings: Settings) -> None:
    """Run the fan-out agent and the sender until SIGTERM / Ctrl-C (``velourcity worker``)."""
    brokers = check_connection(settings)  # one line and exit 2, not a hang, when it cannot
    tracing.configure(settings, "velourcity-worker")
    if settings.event_loop == "uvloop":  # before Faust creates its loop
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    configure_logging(settings)
    serve_metrics(settings)
    endpoints = EndpointCache(settings).start()
    app = create_app(settings, endpoints=endpoints, brokers=brokers)
    health = HealthCache(settings).start()
    services = []
    if settings.worker_role != "fanout":
        handler = DeliveryHandler(settings, endpoints, new_http_sender(settings))
        services.append(Dispatcher(settings, handler, endpoints=endpoints, health=health))
    worker = faust.Worker(app, *services, loglevel=settings.log_level, redirect_stdouts=False)
    quiet_collector()
    try:
        worker.execute_from_commandline()
    finally:
        endpoints.stop()
        health.stop()
        tracing.shutdown()


def quiet_collector() -> None:
    """Tune CPython's cyclic garbage collector for a worker under load (see
    :data:`GC_YOUNG_THRESHOLD`): what exists once the worker is built (modules, the app, its
    clients) is never scanned again (``gc.freeze``), and the young generation is collected
    every :data:`GC_YOUNG_THRESHOLD` allocations, so short-lived records die there. Reference
    counting still frees almost everything at once; the collector only finds cycles."""
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, oldest)
