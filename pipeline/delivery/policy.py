"""What a result means and what happens next: delivered, retry at T, dead letter, disable.

Pure functions, so the whole retry policy is unit-tested without a broker or a network.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Literal

JITTER = 0.2
MAX_RETRY_AFTER = 6 * 3600.0


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptResult:
    status: int | None
    error: str | None
    latency_ms: float
    excerpt: str
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True, slots=True, kw_only=True)
class NextStep:
    kind: Literal["delivered", "retry", "dead_letter", "disable"]
    delay: float = 0.0
    """Seconds until the next attempt (retry only)."""
    tier: float = 0.0
    """The nominal delay of the retry tier the record goes to (retry only)."""
    reason: str = ""


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # delta-seconds is ASCII digits only
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def describe(result: AttemptResult) -> str:
    return f"HTTP {result.status}" if result.status is not None else (result.error or "error")


def next_step(
    result: AttemptResult,
    *,
    attempt: int,
    schedule: list[float],
    rng: random.Random | None = None,
) -> NextStep:
    """Decide after attempt number ``attempt`` (1-based) given the retry ``schedule``."""
    if result.ok:
        return NextStep(kind="delivered")
    if result.status == 410:
        return NextStep(kind="disable", reason="endpoint answered 410 Gone")
    if attempt > len(schedule):
        return NextStep(
            kind="dead_letter", reason=f"{attempt} attempts failed, last: {describe(result)}"
        )
    tier = schedule[attempt - 1]
    delay = tier * (1 + (rng or random).uniform(-JITTER, JITTER))
    if result.status in (429, 503) and result.retry_after is not None:
        # Honour the receiver's wish within reason: never sooner than the tier, never past
        # the next tier (or a hard cap), so one header cannot park a delivery for days.
        ceiling = schedule[attempt] if attempt < len(schedule) else tier * 2
        delay = max(delay, min(result.retry_after, max(tier, ceiling), MAX_RETRY_AFTER))
    return NextStep(kind="retry", delay=delay, tier=tier, reason=describe(result))
