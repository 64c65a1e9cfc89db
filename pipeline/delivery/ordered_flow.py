"""An ordered endpoint's deliveries in the sender: an order's deliveries go out one after the
other (the queues and their durable log are :mod:`pipeline.delivery.ordering`).

A delivery joins its order's queue when the sender takes it, in take order. It is attempted
only as the head of its queue: taken while the head's attempt is in flight, it waits for that
attempt's end (take order is not completion order); otherwise it is parked in a retry tier
until the head is due, without using an attempt. Every change of a queue is acknowledged on
the ordering topic before the record is finished; the head leaves its queue only once its own
results (attempt log, dead letter) were.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

import structlog

from pipeline.delivery.handler import DeliveryHandler
from pipeline.delivery.ordering import OrderingBook, OrderingLog, park_until, queue_name
from pipeline.delivery.record import Delivery
from pipeline.delivery.results import NotDone, Results
from pipeline.endpoints.model import Endpoint
from pipeline.kafka.producer import Output

log = structlog.get_logger(__name__)

Attempt = Callable[[Delivery, Endpoint | None], Awaitable[list[Output]]]


class OrderedFlow:
    def __init__(
        self,
        log_: OrderingLog,
        handler: DeliveryHandler,
        results: Results,
        *,
        tiers: Sequence[float],
        retry_topics: set[str],
        attempt: Attempt,
        halting: Callable[[], bool],
    ) -> None:
        self._log = log_
        self._handler = handler
        self._results = results
        self._tiers = tiers
        self._retry_topics = retry_topics
        self._attempt = attempt
        self._halting = halting
        self._book = OrderingBook()
        self._settled: dict[str, asyncio.Event] = {}
        """Queue → set when its head's attempt is over (wakes the ones waiting)."""
        self._background: set[asyncio.Future[bool]] = set()

    async def start(self) -> None:
        await self._log.start()

    async def stop(self) -> None:
        await self._log.stop()

    async def load(self) -> None:
        """The queues as their last owners left them (at each assignment)."""
        self._book.load(await self._log.catch_up())
        log.info("ordered queues loaded", queues=len(self._book))

    def queue_of(self, delivery: Delivery, endpoint: Endpoint | None) -> str | None:
        """The ordered queue of the delivery; None when its endpoint is not ordered (or gone),
        or the event belongs to no order. A delivery left in a queue from when its endpoint was
        ordered leaves it, so it can never hold that order's later deliveries back."""
        ordered = endpoint is not None and endpoint.ordered
        if not ordered and not len(self._book):
            return None
        key = delivery.order_key()
        if key is None:
            return None
        name = queue_name(delivery.endpoint_id, key)
        if ordered:
            return name
        if self._book.drop(name, delivery.delivery_id):
            task = asyncio.ensure_future(self._persist(name))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        return None

    def join(self, name: str, delivery_id: str) -> bool:
        """The delivery joins its queue now, in take order; True when the queue changed."""
        return self._book.enqueue(name, delivery_id)

    async def deferred(self, name: str, joined: bool, outputs: list[Output]) -> list[Output]:
        """A delivery deferred (its endpoint busy) once its joining the queue is durable."""
        if joined and not await self._persist(name):
            raise NotDone
        return outputs

    async def run(
        self, delivery: Delivery, endpoint: Endpoint | None, name: str, joined: bool
    ) -> list[Output]:
        """Attempt the delivery as its queue's head, wait for the head, or park it (see the
        module's docstring); what is left to produce."""
        did = delivery.delivery_id
        writes: list[asyncio.Future[bool]] = []
        if joined:
            writes.append(asyncio.ensure_future(self._persist(name)))
        while True:
            decision = self._book.decide(name, did)
            if decision.changed:
                writes.append(asyncio.ensure_future(self._persist(name)))
            if decision.kind != "wait":
                break
            await self._settled.setdefault(name, asyncio.Event()).wait()
            if self._halting():  # draining: no new attempts; the record is read again later
                await asyncio.gather(*writes)
                raise NotDone
        outputs: list[Output] = []
        if decision.kind == "park":
            now_ms = int(time.time() * 1000)
            tier, not_before = park_until(now_ms, decision.head_due, self._tiers)
            log.debug("ordered: parked behind its order's head", delivery_id=did, tier=tier)
            outputs = self._handler.park(delivery, tier=tier, not_before=not_before)
        else:
            produced = False
            try:
                outputs = await self._attempt(delivery, endpoint)
                produced = await self._results.produce(outputs)
            finally:
                if produced and self._book.settle(name, did, self._retry_due(outputs, did)):
                    writes.append(asyncio.ensure_future(self._persist(name)))
                elif not produced:
                    self._book.settle(name, did, int(time.time() * 1000))  # head, not busy
                if (settled := self._settled.pop(name, None)) is not None:
                    settled.set()
            outputs = []  # produced already
            if not produced:
                raise NotDone
        if not all(await asyncio.gather(*writes)):
            raise NotDone
        return outputs

    def _retry_due(self, outputs: list[Output], delivery_id: str) -> int | None:
        """When the delivery is tried again (its record in a retry tier); None: it is done."""
        for output in outputs:
            if output.topic in self._retry_topics:
                retry = Delivery.from_bytes(output.value or b"")
                if retry.delivery_id == delivery_id:
                    return retry.not_before
        return None

    async def _persist(self, name: str) -> bool:
        """Write the queue as it is now to the ordering topic; True once acknowledged, False
        when the worker stops first. Writes are sent one at a time, each with the state at
        that moment, so the topic's last value for a queue is always its latest state."""
        key = name.encode()

        def now() -> list[Output]:  # sent in the order of the changes (one partition's order)
            return [Output(self._log.topic, key, self._book.snapshot(name))]

        return await self._results.produce(now, what="an ordered queue")
