"""A circuit breaker per endpoint: stop sending to an endpoint that keeps failing, probe it
now and then, and close again when a probe succeeds.

closed ──(``failures`` failed attempts in a row)──▶ open ──(``cooldown`` passed)──▶ half-open
  ▲                                                  ▲                                 │
  └───────────────(the probe succeeds)───────────────┴──────(the probe fails)──────────┘

While open, deliveries skip the HTTP attempt and wait in a retry tier until the probe is due
(:meth:`Breakers.wait`), without using an attempt: a dead endpoint costs no requests and no
retries, and its deliveries are all still there when it comes back. Each worker keeps its own
breakers; an endpoint's traffic is handled by one worker at a time (see the dispatcher), so
one breaker sees all of its attempts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

State = Literal["closed", "open", "half_open"]


@dataclass
class _Breaker:
    state: State = "closed"
    failures: int = 0
    """Failed attempts in a row."""
    opened_at: float = 0.0
    probing: bool = False
    """A half-open probe is in flight: every other delivery still waits."""


@dataclass(frozen=True, slots=True)
class Change:
    endpoint_id: str
    state: State
    failures: int
    at: float


class Breakers:
    def __init__(
        self,
        *,
        failures: int,
        cooldown: float,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[Change], None] = lambda _change: None,
    ) -> None:
        self._threshold = failures
        self._cooldown = cooldown
        self._clock = clock
        self._on_change = on_change
        self._breakers: dict[str, _Breaker] = {}

    def allow(self, endpoint_id: str) -> bool:
        """May an attempt go to this endpoint now? (A True in half-open state is the probe.)"""
        breaker = self._breakers.get(endpoint_id)
        if breaker is None or breaker.state == "closed":
            return True
        if breaker.state == "open" and self._clock() - breaker.opened_at >= self._cooldown:
            self._set(endpoint_id, breaker, "half_open")
        if breaker.state == "half_open" and not breaker.probing:
            breaker.probing = True
            return True
        return False

    def wait(self, endpoint_id: str) -> float:
        """Seconds a delivery should wait before it is tried: 0 when :meth:`allow` may let it
        through now. While a probe is in flight, a cool-down: if the probe fails, the breaker
        is open that long again."""
        breaker = self._breakers.get(endpoint_id)
        if breaker is None or breaker.state == "closed":
            return 0.0
        if breaker.state == "half_open":
            return self._cooldown if breaker.probing else 0.0
        return max(0.0, breaker.opened_at + self._cooldown - self._clock())

    def record(self, endpoint_id: str, ok: bool) -> None:
        """The outcome of an attempt that :meth:`allow` let through."""
        breaker = self._breakers.setdefault(endpoint_id, _Breaker())
        breaker.probing = False
        if ok:
            breaker.failures = 0
            if breaker.state != "closed":
                self._set(endpoint_id, breaker, "closed")
            if breaker.state == "closed":
                del self._breakers[endpoint_id]  # nothing to remember about a healthy endpoint
            return
        breaker.failures += 1
        if breaker.state == "half_open" or (
            breaker.state == "closed" and breaker.failures >= self._threshold
        ):
            breaker.opened_at = self._clock()
            self._set(endpoint_id, breaker, "open")

    def forget(self, endpoint_id: str) -> None:
        """No attempt was made after all (the endpoint was deleted or disabled meanwhile)."""
        self._breakers.pop(endpoint_id, None)

    def state(self, endpoint_id: str) -> State:
        breaker = self._breakers.get(endpoint_id)
        return breaker.state if breaker else "closed"

    def open_count(self) -> int:
        return sum(b.state != "closed" for b in self._breakers.values())

    def _set(self, endpoint_id: str, breaker: _Breaker, state: State) -> None:
        breaker.state = state
        self._on_change(Change(endpoint_id, state, breaker.failures, time.time()))
