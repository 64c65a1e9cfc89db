"""confluent-kafka's (librdkafka's) producer on an asyncio loop.

``produce`` hands a record to librdkafka's buffer and returns at once (~3 µs); its delivery
report comes back through ``poll``, which :class:`AsyncProducer` calls on the loop every
millisecond while reports are outstanding (never when idle). :meth:`AsyncProducer.send`
produces a whole list of records with no await per record and returns one future, done when
the broker acknowledged every one of them (or failed with the first error). That is what the
fan-out and the sender need: a source offset is committed only after its results are durable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

POLL_INTERVAL = 0.001


@dataclass(frozen=True, slots=True)
class Output:
    """A record to produce (and see acknowledged) before the offset of what made it is
    committed. ``value`` None is a tombstone (compacted topics)."""

    topic: str
    key: bytes
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


class ProduceError(Exception):
    """The broker did not take a record: ``fatal`` means this producer can never succeed
    again (e.g. its idempotence state was fenced) and a new one is needed."""

    def __init__(self, error: KafkaError) -> None:
        super().__init__(error.str())
        self.code = error.code()
        self.fatal = bool(error.fatal())


class _Batch:
    """The future of one :meth:`AsyncProducer.send`: done when its last record is reported."""

    __slots__ = ("future", "left")

    def __init__(self, future: asyncio.Future[None], left: int) -> None:
        self.future = future
        self.left = left

    def report(self, error: KafkaError | None, _message: Message) -> None:
        if self.future.done():
            return
        if error is not None:
            self.future.set_exception(ProduceError(error))
            return
        self.left -= 1
        if not self.left:
            self.future.set_result(None)


class AsyncProducer:
    """One librdkafka producer for the records of one process's asyncio loop."""

    def __init__(self, config: dict[str, Any]) -> None:
        self._config = config
        self._producer = Producer(config)
        self._poller: asyncio.TimerHandle | None = None

    def send(self, outputs: Sequence[Output]) -> asyncio.Future[None]:
        """Produce every record now; the future is done when all are acknowledged."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        if not outputs:
            future.set_result(None)
            return future
        report = _Batch(future, len(outputs)).report
        produce = self._producer.produce
        for output in outputs:
            while True:
                try:
                    produce(
                        output.topic,
                        output.value,
                        output.key,
                        headers=list(output.headers) if output.headers else None,
                        on_delivery=report,
                    )
                    break
                except BufferError:  # librdkafka's queue is full: let reports drain it
                    self._producer.poll(0.005)
                except KafkaException as exc:  # e.g. a record over the size limit
                    if not future.done():
                        future.set_exception(ProduceError(exc.args[0]))
                    return future
        if self._poller is None:
            self._poller = loop.call_later(POLL_INTERVAL, self._poll, loop)
        return future

    def _poll(self, loop: asyncio.AbstractEventLoop) -> None:
        self._producer.poll(0)
        self._poller = (
            loop.call_later(POLL_INTERVAL, self._poll, loop) if len(self._producer) else None
        )

    def renewed(self) -> AsyncProducer:
        """A new producer with the same configuration, for one that reported a fatal error.
        What this one still held fails now (purged), so whoever waits for it produces it
        again with the new one."""
        if self._poller is not None:
            self._poller.cancel()
            self._poller = None
        self._producer.purge(in_queue=True, in_flight=True)
        self._producer.poll(0)  # the purged records' reports, on this loop
        return AsyncProducer(self._config)

    async def flush(self, seconds: float) -> int:
        """Wait for what is buffered (at most ``seconds``); how many records are left."""
        deadline = asyncio.get_running_loop().time() + seconds
        while len(self._producer) and asyncio.get_running_loop().time() < deadline:
            self._producer.poll(0)  # reports are served on this loop, never another thread
            await asyncio.sleep(POLL_INTERVAL * 5)
        return len(self._producer)

    def __len__(self) -> int:
        return len(self._producer)
