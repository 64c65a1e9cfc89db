"""A producer that can never succeed again (OutOfOrderSequenceNumber after a broker restart)
is replaced, and the results are produced with the new one.

Regression: in the chaos suite's broker-restart scenario, a sender retried with its broken
idempotent producer every 5 s forever, so its partitions delivered nothing more."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.errors import OutOfOrderSequenceNumber

from pipeline.delivery.dispatcher import Dispatcher
from pipeline.delivery.handler import Output
from pipeline.settings import Settings


class FakeProducer:
    def __init__(self, *, broken: bool) -> None:
        self.broken = broken
        self.sent: list[bytes] = []
        self.started = self.stopped = False

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def send(self, topic: str, value: bytes, **_: Any) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.broken:
            future.set_exception(OutOfOrderSequenceNumber())
        else:
            self.sent.append(value)
            future.set_result(None)
        return future


async def _run() -> tuple[bool, FakeProducer, FakeProducer, Any]:
    dispatcher = Dispatcher(Settings(), handler=None)  # type: ignore[arg-type]
    broken, fresh = FakeProducer(broken=True), FakeProducer(broken=False)
    dispatcher._producer = broken  # type: ignore[assignment]
    dispatcher._new_producer = lambda: fresh  # type: ignore[assignment,method-assign,return-value]
    ok = await asyncio.wait_for(dispatcher._produce([Output("attempts", b"k", b"v")]), 5)
    await asyncio.sleep(0)  # the broken one is stopped in the background
    return ok, broken, fresh, dispatcher._producer


def test_a_broken_producer_is_replaced_and_the_results_produced() -> None:
    ok, broken, fresh, current = asyncio.run(_run())
    assert ok
    assert current is fresh and fresh.started
    assert fresh.sent == [b"v"]
    assert broken.stopped
