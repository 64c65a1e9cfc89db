"""Remember ``webhook-id`` for a while, so a webhook delivered twice is processed once.

Delivery is at least once: a retry after a timeout, or a worker restart, can bring the same
webhook again, always with the same ``webhook-id``. Before acting on a webhook, ask the store::

    if store.seen_before(headers["webhook-id"]):
        return 200          # already handled: acknowledge, do nothing

``seen_before`` is an atomic check-and-set, so two copies arriving at once on two threads cannot
both see ``False``. A store shared by several processes (Redis ``SET key 1 NX EX ttl``, a
database unique key) implements :class:`IdempotencyStore`; :class:`MemoryIdempotencyStore` is
the single-process default. Standard library only, like the rest of ``velourcity_webhooks``.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol, runtime_checkable

__all__ = ["DEFAULT_WINDOW_SECONDS", "IdempotencyStore", "MemoryIdempotencyStore"]

DEFAULT_WINDOW_SECONDS = 72 * 3600
"""Three days: longer than the whole default retry schedule (about 27.6 hours from the first
attempt to the last), so every retry of a webhook already processed is still recognised."""

DEFAULT_MAX_ENTRIES = 100_000


@runtime_checkable
class IdempotencyStore(Protocol):
    """What the receiver helpers need from a store of webhook ids."""

    def seen_before(self, webhook_id: str) -> bool:
        """Atomically: ``True`` if ``webhook_id`` is remembered, else remember it, ``False``."""
        ...

    def forget(self, webhook_id: str) -> None:
        """Drop ``webhook_id``: processing failed, so the next delivery must be processed."""
        ...


class MemoryIdempotencyStore:
    """Ids in a dict, thread-safe, each forgotten ``window`` seconds after it was first seen.

    Memory is bounded by ``max_entries``: when full, the oldest id is dropped early (a very
    late duplicate of it would then be processed again, the lesser evil next to unbounded
    growth). Only for one process: several workers need a shared store.
    """

    def __init__(
        self,
        window: float = DEFAULT_WINDOW_SECONDS,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if window <= 0:
            raise ValueError("the idempotency window must be positive seconds")
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._window = window
        self._max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        # id -> expiry; insertion order is expiry order (one window, a monotonic clock), so
        # expired ids are always at the front and are dropped from there.
        self._expiries: OrderedDict[str, float] = OrderedDict()

    def seen_before(self, webhook_id: str) -> bool:
        with self._lock:
            now = self._clock()
            self._expire(now)
            if webhook_id in self._expiries:
                return True
            self._expiries[webhook_id] = now + self._window
            while len(self._expiries) > self._max_entries:
                self._expiries.popitem(last=False)
            return False

    def forget(self, webhook_id: str) -> None:
        with self._lock:
            self._expiries.pop(webhook_id, None)

    def __len__(self) -> int:
        with self._lock:
            self._expire(self._clock())
            return len(self._expiries)

    def _expire(self, now: float) -> None:
        while self._expiries:
            oldest, expiry = next(iter(self._expiries.items()))
            if expiry > now:
                return
            del self._expiries[oldest]
