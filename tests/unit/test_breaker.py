"""The per-endpoint circuit breaker: open after N failures in a row, one probe after the
cooldown, closed by a successful probe, reopened by a failed one."""

from __future__ import annotations

from pipeline.delivery.breaker import Breakers, Change


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(changes: list[Change] | None = None) -> tuple[Breakers, Clock]:
    clock = Clock()
    sink = changes if changes is not None else []
    return Breakers(failures=3, cooldown=30, clock=clock, on_change=sink.append), clock


def test_opens_after_failures_in_a_row_only() -> None:
    breakers, _ = make()
    for ok in (False, False, True, False, False):  # a success in between resets the count
        assert breakers.allow("ep")
        breakers.record("ep", ok)
    assert breakers.state("ep") == "closed"
    breakers.record("ep", False)
    assert breakers.state("ep") == "open"
    assert not breakers.allow("ep")
    assert breakers.allow("other")  # other endpoints are not affected


def test_one_probe_after_the_cooldown_and_a_success_closes() -> None:
    changes: list[Change] = []
    breakers, clock = make(changes)
    for _ in range(3):
        breakers.record("ep", False)
    clock.now += 29
    assert not breakers.allow("ep")
    clock.now += 1
    assert breakers.allow("ep")  # the probe
    assert breakers.state("ep") == "half_open"
    assert not breakers.allow("ep")  # everything else waits for the probe's outcome
    breakers.record("ep", True)
    assert breakers.state("ep") == "closed"
    assert breakers.allow("ep")
    assert [c.state for c in changes] == ["open", "half_open", "closed"]
    assert breakers.open_count() == 0


def test_a_failed_probe_reopens_for_another_cooldown() -> None:
    breakers, clock = make()
    for _ in range(3):
        breakers.record("ep", False)
    clock.now += 30
    assert breakers.allow("ep")
    breakers.record("ep", False)
    assert breakers.state("ep") == "open"
    assert breakers.open_count() == 1
    clock.now += 10
    assert not breakers.allow("ep")
    clock.now += 20
    assert breakers.allow("ep")


def test_wait_says_when_the_probe_is_due() -> None:
    breakers, clock = make()
    assert breakers.wait("ep") == 0  # closed
    for _ in range(3):
        breakers.record("ep", False)
    assert breakers.wait("ep") == 30
    clock.now += 12
    assert breakers.wait("ep") == 18
    clock.now += 18
    assert breakers.wait("ep") == 0  # the probe may go
    assert breakers.allow("ep")  # the probe is in flight: the others wait one more cool-down
    assert breakers.wait("ep") == 30
    breakers.record("ep", True)
    assert breakers.wait("ep") == 0
