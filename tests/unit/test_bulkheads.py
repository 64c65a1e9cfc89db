"""The sender's bulkheads (pipeline/delivery/bulkheads.py), without a broker."""

from __future__ import annotations

import asyncio
import time

import pytest

from pipeline.delivery import bulkheads as bulkheads_module
from pipeline.delivery.bulkheads import FAST_WAIT, FIRST_WAIT, Bulkheads


def bulkheads() -> Bulkheads:
    return Bulkheads(concurrency=4, in_flight=2, queued=1)


def warm(b: Bulkheads, *endpoints: str) -> Bulkheads:
    """Past the endpoints' first connections' first attempts, which are not averaged."""
    for endpoint in endpoints:
        for _ in range(2):
            b.observe(endpoint, 93.0)
    return b


def test_an_endpoint_s_first_connections_first_attempts_are_not_averaged() -> None:
    b = bulkheads()
    b.observe("ep_a", 93.0)  # cold: a new connection each
    b.observe("ep_a", 93.0)
    assert b.fast("ep_a")  # still not measured
    b.observe("ep_a", 1.0)
    assert b.fast("ep_a")
    b.observe("ep_b", 93.0)
    b.observe("ep_b", 93.0)
    b.observe("ep_b", 93.0)  # the third is averaged: slow
    assert not b.fast("ep_b")


def test_an_endpoint_is_full_at_its_share_and_not_before() -> None:
    b = bulkheads()
    assert b.share == 3
    for _ in range(3):
        assert not b.full("ep_a")
        b.hold("ep_a")
    assert b.full("ep_a") and b.held("ep_a") == 3
    assert not b.full("ep_b")  # one endpoint's share is its own
    b.release("ep_a")
    assert not b.full("ep_a") and b.held("ep_a") == 2


def test_an_endpoint_with_nothing_held_keeps_only_its_pace() -> None:
    b = warm(bulkheads(), "ep_a", "ep_b")
    b.hold("ep_a")
    turn = b.turn("ep_a")
    b.observe("ep_a", 5.0)
    for _ in range(20):
        b.observe("ep_b", 400.0)
    assert b.turn("ep_a") is turn
    b.release("ep_a")
    assert b.held("ep_a") == 0
    assert b.turn("ep_a") is not turn  # a new one: no semaphore left behind
    # its pace is kept: the next burst of a fast endpoint is not deferred for want of a
    # measurement (each burst of a backlog deferred ~9 of 10 records while it was forgotten)
    assert b.fast("ep_a") and not b.fast("ep_b")


def test_the_moving_average_tells_a_slow_endpoint() -> None:
    b = warm(bulkheads(), "ep_a")
    b.hold("ep_a")
    b.observe("ep_a", 10.0)
    assert b.fast("ep_a")
    for _ in range(20):
        b.observe("ep_a", 400.0)
    assert not b.fast("ep_a")


def test_a_wait_that_runs_out_marks_the_endpoint_slow_until_an_attempt_is_fast() -> None:
    async def scenario() -> tuple[float, float]:
        b = bulkheads()
        for _ in range(3):
            b.hold("ep_a")  # never measured, nothing finishes: a hanging endpoint
        started = time.monotonic()
        await b.wait_if_fast("ep_a")
        first = time.monotonic() - started
        assert not b.fast("ep_a")
        started = time.monotonic()
        await b.wait_if_fast("ep_a")  # the next one at its share is deferred at once
        second = time.monotonic() - started
        for _ in range(3):
            b.observe("ep_a", 2.0)  # its first connections' first, then it answered fast
        assert b.fast("ep_a")
        return first, second

    first, second = asyncio.run(scenario())
    assert FIRST_WAIT * 0.9 <= first < FIRST_WAIT * 2  # not measured yet: the longer wait
    assert second < FAST_WAIT / 2


def test_a_fast_full_endpoint_waits_until_one_of_its_deliveries_finishes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bulkheads_module, "FAST_WAIT", 5.0)  # woken long before it

    async def scenario() -> float:
        b = warm(bulkheads(), "ep_a")
        for _ in range(3):
            b.hold("ep_a")
        b.observe("ep_a", 2.0)
        asyncio.get_running_loop().call_later(0.01, b.release, "ep_a")
        started = time.monotonic()
        await b.wait_if_fast("ep_a")
        assert not b.full("ep_a")
        return time.monotonic() - started

    assert asyncio.run(scenario()) < 2.5


def test_a_fast_full_endpoint_waits_no_longer_than_fast_wait() -> None:
    async def scenario() -> float:
        b = warm(bulkheads(), "ep_a")
        for _ in range(3):
            b.hold("ep_a")
        b.observe("ep_a", 2.0)
        started = time.monotonic()
        await b.wait_if_fast("ep_a")
        assert b.full("ep_a")  # nothing finished: the caller defers it
        return time.monotonic() - started

    assert FAST_WAIT * 0.9 <= asyncio.run(scenario()) < FAST_WAIT * 5


def test_a_slow_full_endpoint_does_not_wait() -> None:
    async def scenario() -> float:
        b = warm(bulkheads(), "ep_a")
        for _ in range(3):
            b.hold("ep_a")
        for _ in range(20):
            b.observe("ep_a", 500.0)
        started = time.monotonic()
        await b.wait_if_fast("ep_a")
        return time.monotonic() - started

    assert asyncio.run(scenario()) < FAST_WAIT / 2


def test_room_in_grows_while_a_held_endpoint_has_no_request_ending() -> None:
    now = [100.0]
    b = warm(Bulkheads(concurrency=4, in_flight=2, queued=1, clock=lambda: now[0]), "ep_a")
    for _ in range(3):
        b.hold("ep_a")
    assert b.room_in("ep_a") == 0.0  # nothing measured, nothing stalled yet
    now[0] += 4.0  # none of its requests ended for 4 s: its share of 3 drains 2 at a time
    assert b.room_in("ep_a") == 6.0
    b.release("ep_a")  # one ended: the stall is over
    assert b.room_in("ep_a") == 0.0
    b.observe("ep_a", 1000.0)  # then its average: 1 s a request
    assert b.room_in("ep_a") == 1.5
    assert b.room_in("ep_b") == 0.0  # one never held
