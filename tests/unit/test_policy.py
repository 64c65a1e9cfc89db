"""The retry policy: what a result means and when the next attempt happens (pure functions)."""

from __future__ import annotations

import random
from email.utils import formatdate

import pytest

from pipeline.delivery.policy import (
    JITTER,
    MAX_RETRY_AFTER,
    AttemptResult,
    next_step,
    parse_retry_after,
)

SCHEDULE = [1.0, 2.0, 2.0]
NOW = 1_760_000_000.0


def result(
    status: int | None = 500, *, error: str | None = None, retry_after: float | None = None
) -> AttemptResult:
    return AttemptResult(
        status=status, error=error, latency_ms=12.5, excerpt="", retry_after=retry_after
    )


def within_jitter(delay: float, tier: float) -> bool:
    return tier * (1 - JITTER) <= delay <= tier * (1 + JITTER)


# Outcomes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_2xx_is_delivered(status: int) -> None:
    step = next_step(result(status), attempt=1, schedule=SCHEDULE, rng=random.Random(1))
    assert step.kind == "delivered"


@pytest.mark.parametrize("attempt", [1, 2, 4])
def test_410_disables_the_endpoint_whatever_the_attempt(attempt: int) -> None:
    step = next_step(result(410), attempt=attempt, schedule=SCHEDULE, rng=random.Random(1))
    assert step.kind == "disable"
    assert "410" in step.reason


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (500, None),
        (502, None),
        (404, None),
        (400, None),
        (302, None),
        (199, None),
        (300, None),
        (None, "connect_error"),
        (None, "timeout"),
        (None, "tls_error"),
    ],
)
def test_failures_retry_in_the_scheduled_tier(status: int | None, error: str | None) -> None:
    rng = random.Random(42)
    for attempt, tier in enumerate(SCHEDULE, start=1):
        step = next_step(result(status, error=error), attempt=attempt, schedule=SCHEDULE, rng=rng)
        assert step.kind == "retry"
        assert step.tier == tier
        assert within_jitter(step.delay, tier), (attempt, step.delay)
        assert step.reason == (f"HTTP {status}" if status is not None else error)


def test_jitter_stays_within_20_percent_and_actually_varies() -> None:
    rng = random.Random(7)
    schedule = [300.0, 1800.0]
    delays = [
        next_step(result(500), attempt=1, schedule=schedule, rng=rng).delay for _ in range(500)
    ]
    assert all(240.0 <= d <= 360.0 for d in delays)
    assert min(delays) < 260.0 and max(delays) > 340.0  # the whole ±20 % band is used
    assert len(set(delays)) > 400


def test_seeded_rng_makes_the_delay_reproducible() -> None:
    one = next_step(result(500), attempt=2, schedule=SCHEDULE, rng=random.Random(3))
    two = next_step(result(500), attempt=2, schedule=SCHEDULE, rng=random.Random(3))
    assert one == two


def test_after_the_last_scheduled_retry_it_is_a_dead_letter() -> None:
    last = len(SCHEDULE) + 1
    step = next_step(result(503), attempt=last, schedule=SCHEDULE, rng=random.Random(1))
    assert step.kind == "dead_letter"
    assert f"{last} attempts" in step.reason
    assert "HTTP 503" in step.reason


def test_dead_letter_names_the_last_error_when_no_response_came() -> None:
    step = next_step(
        result(None, error="connect_error"), attempt=4, schedule=SCHEDULE, rng=random.Random(1)
    )
    assert step.kind == "dead_letter"
    assert "4 attempts" in step.reason
    assert "connect_error" in step.reason


def test_success_on_the_last_attempt_is_still_delivered() -> None:
    step = next_step(result(200), attempt=4, schedule=SCHEDULE, rng=random.Random(1))
    assert step.kind == "delivered"


def test_empty_schedule_means_one_attempt_then_dead_letter() -> None:
    step = next_step(result(500), attempt=1, schedule=[], rng=random.Random(1))
    assert step.kind == "dead_letter"
    assert "1 attempts" in step.reason


# Retry-After --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_within_range_is_honoured(status: int) -> None:
    # Tier 300 s, next tier 1800 s: asking for 1000 s gets exactly 1000 s.
    schedule = [300.0, 1800.0, 7200.0]
    step = next_step(
        result(status, retry_after=1000.0), attempt=1, schedule=schedule, rng=random.Random(5)
    )
    assert step.kind == "retry"
    assert step.tier == 300.0
    assert step.delay == 1000.0


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_never_sooner_than_the_jittered_tier(status: int) -> None:
    schedule = [300.0, 1800.0]
    plain = next_step(result(status), attempt=1, schedule=schedule, rng=random.Random(9))
    step = next_step(
        result(status, retry_after=0.0), attempt=1, schedule=schedule, rng=random.Random(9)
    )
    assert step.delay == plain.delay
    assert within_jitter(step.delay, 300.0)


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_never_later_than_the_next_tier(status: int) -> None:
    schedule = [300.0, 1800.0]
    step = next_step(
        result(status, retry_after=86_400.0), attempt=1, schedule=schedule, rng=random.Random(9)
    )
    assert step.delay == 1800.0
    assert step.tier == 300.0


def test_retry_after_on_the_last_retry_is_capped_at_twice_the_tier() -> None:
    schedule = [300.0, 1800.0]
    step = next_step(
        result(429, retry_after=86_400.0), attempt=2, schedule=schedule, rng=random.Random(9)
    )
    assert step.delay == 3600.0


def test_retry_after_never_exceeds_the_hard_cap() -> None:
    schedule = [10_000.0, 100_000.0]
    step = next_step(
        result(503, retry_after=1e9), attempt=1, schedule=schedule, rng=random.Random(9)
    )
    assert step.delay == MAX_RETRY_AFTER


def test_a_long_retry_after_never_makes_the_retry_sooner() -> None:
    """Clamping to the next tier must not undercut the jittered delay of this tier.

    With tiers 2 s then 2 s, the jittered delay can be 2.4 s; a ``Retry-After`` asking for
    *more* time must not turn that into 2 s.
    """
    for seed in range(50):
        plain = next_step(result(503), attempt=2, schedule=SCHEDULE, rng=random.Random(seed))
        asked = next_step(
            result(503, retry_after=3600.0), attempt=2, schedule=SCHEDULE, rng=random.Random(seed)
        )
        assert asked.delay >= plain.delay, seed
        assert asked.delay <= max(2.0, plain.delay), seed


def test_a_tier_longer_than_the_cap_is_not_shortened_by_retry_after() -> None:
    schedule = [36_000.0, 36_000.0]
    plain = next_step(result(503), attempt=1, schedule=schedule, rng=random.Random(4))
    asked = next_step(
        result(503, retry_after=50_000.0), attempt=1, schedule=schedule, rng=random.Random(4)
    )
    assert asked.delay >= plain.delay


@pytest.mark.parametrize("status", [500, 502, 504, 408])
def test_retry_after_is_ignored_for_other_statuses(status: int) -> None:
    schedule = [300.0, 1800.0]
    plain = next_step(result(status), attempt=1, schedule=schedule, rng=random.Random(2))
    asked = next_step(
        result(status, retry_after=1000.0), attempt=1, schedule=schedule, rng=random.Random(2)
    )
    assert asked.delay == plain.delay


def test_retry_after_does_not_postpone_a_dead_letter() -> None:
    step = next_step(result(429, retry_after=10.0), attempt=4, schedule=SCHEDULE)
    assert step.kind == "dead_letter"


# Parsing Retry-After --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"), [("0", 0.0), ("120", 120.0), (" 30 ", 30.0), ("86400", 86400.0)]
)
def test_parse_retry_after_seconds(value: str, expected: float) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_parse_retry_after_http_date() -> None:
    value = formatdate(NOW + 90, usegmt=True)  # e.g. "Thu, 09 Oct 2025 08:55:30 GMT"
    assert parse_retry_after(value, NOW) == pytest.approx(90.0)


def test_parse_retry_after_http_date_in_the_past_is_zero() -> None:
    assert parse_retry_after(formatdate(NOW - 600, usegmt=True), NOW) == 0.0


@pytest.mark.parametrize(
    "value",
    [None, "", "   ", "soon", "-5", "1.5", "1e3", "12abc", "Mon, 99 Foo 2025", "\u00b2", "\u0663"],
)
def test_parse_retry_after_garbage_is_none(value: str | None) -> None:
    assert parse_retry_after(value, NOW) is None


def test_attempt_result_ok_only_for_2xx() -> None:
    assert result(200).ok
    assert result(204).ok
    assert not result(199).ok
    assert not result(300).ok
    assert not result(None, error="timeout").ok
