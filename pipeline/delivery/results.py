"""Producing the sender's results (attempt log, retry tiers, dead letters, ordered queues,
endpoint health) and waiting for the broker's acks: a record's offset is committed only once
its results are durable.

A failed send is retried with backoff for as long as the worker runs (the broker may be
restarting); a producer that can never succeed again (a fatal error: e.g. its idempotence
state fenced after a broker restart) is replaced by a new one and what it failed is produced
with that. Seen in the chaos suite's broker-restart scenario, where a sender retried with its
broken producer forever and delivered nothing more.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import structlog

from pipeline.kafka.producer import AsyncProducer, Output, ProduceError

log = structlog.get_logger(__name__)

BACKOFF_MAX = 5.0


class NotDone(Exception):
    """A job's results were not all acknowledged (the worker is stopping): its record stays
    unfinished, so it is read again."""


class Results:
    def __init__(self, new_producer: Callable[[], AsyncProducer]) -> None:
        self._new_producer = new_producer
        self.producer: AsyncProducer | None = None
        self.stopping = False
        """Set when the worker drains: a failed send is not retried, its record is read again."""

    def start(self) -> None:
        self.producer = self._new_producer()

    async def produce(
        self,
        outputs: Sequence[Output] | Callable[[], Sequence[Output]],
        *,
        what: str = "results",
    ) -> bool:
        """Produce and wait for the acks. False when the worker stops first: the record stays
        unfinished, so it is read again. A callable is asked for the records at each try (a
        state written again after a failure is the state as it is then)."""
        backoff = 0.1
        while True:
            producer = self.producer
            assert producer is not None
            try:
                await producer.send(outputs() if callable(outputs) else outputs)
                return True
            except ProduceError as exc:
                if self.stopping:
                    log.error(f"{what} not produced before stopping", error=str(exc))
                    return False
                if exc.fatal:
                    self._replace(producer, exc)
                    continue
                log.warning(f"producing {what} failed; retrying", error=str(exc), wait=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)

    def send_quietly(self, outputs: Sequence[Output]) -> asyncio.Future[None] | None:
        """A best-effort write (endpoint health: the next change replaces it)."""
        if self.producer is None:
            return None
        return asyncio.ensure_future(_quietly(self.producer.send(outputs)))

    def _replace(self, broken: AsyncProducer, exc: ProduceError) -> None:
        if self.producer is not broken:
            return  # another job replaced it already
        log.warning("producer broken; starting a new one", error=str(exc))
        self.producer = broken.renewed()

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.flush(10)


async def _quietly(sent: asyncio.Future[None]) -> None:
    try:
        await sent
    except ProduceError as exc:
        log.info("best-effort write failed", error=str(exc))
