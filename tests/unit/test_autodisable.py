"""The failure streak behind auto-disable, without a broker or a clock."""

from __future__ import annotations

from pipeline.delivery.autodisable import DAY_MS, FailureStreaks


def test_an_endpoint_failing_for_the_whole_period_is_disabled_once() -> None:
    streaks = FailureStreaks(days=5)
    assert streaks.record("ep_1", False, 0) is None
    assert streaks.since("ep_1") == 0
    assert streaks.record("ep_1", False, 5 * DAY_MS - 1) is None
    assert streaks.record("ep_1", False, 5 * DAY_MS) == 0  # disable now, from when it began
    assert streaks.since("ep_1") is None  # forgotten: not disabled twice


def test_one_success_ends_the_streak() -> None:
    streaks = FailureStreaks(days=5)
    streaks.record("ep_1", False, 0)
    streaks.record("ep_1", True, DAY_MS)
    assert streaks.record("ep_1", False, 5 * DAY_MS) is None
    assert streaks.since("ep_1") == 5 * DAY_MS


def test_the_streak_carries_on_from_what_the_health_topic_says() -> None:
    """A restarted worker, or the partition's new owner, continues the earlier streak."""
    streaks = FailureStreaks(days=5, known={"ep_1": {"failing_since": 100}}.get)
    assert streaks.record("ep_1", False, 100 + 5 * DAY_MS) == 100
    assert streaks.record("ep_2", False, 7) is None
    assert streaks.since("ep_2") == 7
