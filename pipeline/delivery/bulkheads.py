"""The sender's bulkheads: how much of a worker one endpoint may hold.

A worker makes at most ``sender_concurrency`` requests at once (:attr:`Bulkheads.requests`);
one endpoint has at most ``endpoint_max_in_flight`` of them (:meth:`Bulkheads.turn`), and at
most ``endpoint_max_queued`` more of its deliveries wait in memory for their turn: its
*share* of held deliveries (taken, their request not over yet). Past its share an endpoint's
deliveries are deferred to the first retry tier, unless it is *fast* (its attempts average
under :data:`FAST_ENDPOINT_MS`): then the sender waits up to :data:`FAST_WAIT` for one of them
to be done (:meth:`Bulkheads.wait_if_fast`), so a fast endpoint's backlog is sent, not cycled
through a retry tier. An endpoint not measured yet gets one longer wait (:data:`FIRST_WAIT`:
its first requests open connections); when a wait runs out the endpoint counts as slow until
an attempt shows otherwise. A deferred delivery waits until its endpoint may have room again
(:meth:`Bulkheads.room_in`; at least the first tier, at most the breaker's cool-down). So a
hanging endpoint holds a few of the worker's requests and a bounded queue of its own, never
the other endpoints' turn, and its deferred deliveries do not come round every first tier.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable

FAST_ENDPOINT_MS = 50.0
"""An endpoint whose attempts take less than this (moving average) is *fast*: at its share it
gets a turn within milliseconds, so the sender waits for one (at most :data:`FAST_WAIT`)
instead of deferring its deliveries to a retry tier. A slower one is deferred at once."""
FAST_WAIT = 0.05
FIRST_WAIT = 0.5
"""The wait for an endpoint not measured yet (at a worker's start on a backlog, 0.05 s deferred
hundreds of a fast endpoint's first records: its first requests open connections). A hanging
endpoint costs it once; then it is slow."""


class Bulkheads:
    def __init__(
        self,
        *,
        concurrency: int,
        in_flight: int,
        queued: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.requests = asyncio.Semaphore(concurrency)
        """The worker's own limit on requests in flight."""
        self.share = in_flight + queued
        """Deliveries of one endpoint a worker holds at most (in flight and waiting)."""
        self._in_flight = in_flight
        self._held: Counter[str] = Counter()
        self._turns: dict[str, asyncio.Semaphore] = {}
        self._latency_ms: dict[str, float] = {}
        self._freed: dict[str, asyncio.Event] = {}
        self._observed: Counter[str] = Counter()
        """Attempts seen per endpoint, up to ``in_flight`` (its first connections' first)."""
        self._moved_at: dict[str, float] = {}
        """When one of the endpoint's requests last ended (or it was held again after none)."""
        self._clock = clock

    def held(self, endpoint_id: str) -> int:
        return self._held[endpoint_id]

    def full(self, endpoint_id: str) -> bool:
        return self._held[endpoint_id] >= self.share

    def hold(self, endpoint_id: str) -> None:
        if not self._held[endpoint_id]:
            self._moved_at[endpoint_id] = self._clock()
        self._held[endpoint_id] += 1

    def release(self, endpoint_id: str) -> None:
        """One of the endpoint's held deliveries is done with its request: one waiting for a
        turn may go."""
        if (freed := self._freed.pop(endpoint_id, None)) is not None:
            freed.set()
        self._moved_at[endpoint_id] = self._clock()
        self._held[endpoint_id] -= 1
        if self._held[endpoint_id] <= 0:
            del self._held[endpoint_id]
            del self._moved_at[endpoint_id]
            self._turns.pop(endpoint_id, None)  # none when it was only ever parked
            # its pace is kept (a float an endpoint): the next burst need not learn it again

    def turn(self, endpoint_id: str) -> asyncio.Semaphore:
        """The endpoint's own limit on requests in flight."""
        turn = self._turns.get(endpoint_id)
        if turn is None:
            turn = self._turns[endpoint_id] = asyncio.Semaphore(self._in_flight)
        return turn

    def observe(self, endpoint_id: str, latency_ms: float) -> None:
        """An attempt's latency, into the endpoint's moving average; not the endpoint's first
        ``in_flight`` ones, each on a new connection (they took ~93 ms against ~1 ms after, on
        127.0.0.1 at a worker's start on a backlog: an average they set deferred the rest of
        the first batches). A hanging endpoint is told by its wait running out instead."""
        if self._observed[endpoint_id] < self._in_flight:
            self._observed[endpoint_id] += 1
            return
        average = self._latency_ms.get(endpoint_id, latency_ms)
        self._latency_ms[endpoint_id] = 0.8 * average + 0.2 * latency_ms

    def room_in(self, endpoint_id: str) -> float:
        """Seconds until an endpoint at its share may have room again: its share drained
        ``in_flight`` at a time, each request taking its average or, when longer, the time since
        one of its requests last ended (so a hanging endpoint's grows as it hangs). What a
        delivery deferred past its share waits, at least."""
        now = self._clock()
        stalled = now - self._moved_at.get(endpoint_id, now)
        pace = max(self._latency_ms.get(endpoint_id, 0.0) / 1000, stalled)
        return pace * self.share / self._in_flight

    def fast(self, endpoint_id: str) -> bool:
        """Worth waiting for at its share: its attempts average under :data:`FAST_ENDPOINT_MS`,
        or it was not measured yet (it gets one wait)."""
        return self._latency_ms.get(endpoint_id, 0.0) < FAST_ENDPOINT_MS

    async def wait_if_fast(self, endpoint_id: str) -> None:
        """An endpoint at its share that answers fast: wait (briefly) for one of its
        deliveries to finish. Returns at once for a slow one, or after :data:`FAST_WAIT`
        (:data:`FIRST_WAIT` when not measured yet)."""
        measured = endpoint_id in self._latency_ms
        deadline = time.monotonic() + (FAST_WAIT if measured else FIRST_WAIT)
        while (
            self.full(endpoint_id)
            and self.fast(endpoint_id)
            and (left := deadline - time.monotonic()) > 0
        ):
            freed = self._freed.get(endpoint_id)
            if freed is None:
                freed = self._freed[endpoint_id] = asyncio.Event()
            try:
                await asyncio.wait_for(freed.wait(), left)
            except TimeoutError:
                # none of its deliveries finished in time: slow until an attempt shows otherwise
                average = self._latency_ms.get(endpoint_id, FAST_ENDPOINT_MS)
                self._latency_ms[endpoint_id] = max(average, FAST_ENDPOINT_MS)
                return
