"""Per-endpoint rate limits: attempts to one endpoint spaced at least ``1 / rate`` seconds
apart (a leaky bucket without burst), waiting in memory for their turn.

Held across all workers because one worker handles all of an endpoint's traffic at a time:
deliveries and retries are keyed by endpoint id, every sender topic has the same partition
count, and the sender's consumer group uses range assignment, which gives partition *p* of
every topic to the same worker. During a rebalance two workers may briefly both send.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class RateLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._next: dict[str, float] = {}

    def reserve(self, key: str, rate: float) -> float:
        """Take the key's next turn; return how many seconds to wait for it."""
        now = self._clock()
        turn = max(now, self._next.get(key, now))
        self._next[key] = turn + 1 / rate
        if len(self._next) > 10_000:  # forget keys whose turn has long passed
            self._next = {k: t for k, t in self._next.items() if t > now}
        return turn - now

    async def wait(self, key: str, rate: float) -> None:
        delay = self.reserve(key, rate)
        if delay > 0:
            await asyncio.sleep(delay)
