"""The commit point when records finish out of order: never past an unfinished record."""

from __future__ import annotations

import random

import pytest

from pipeline.delivery.offsets import OffsetTracker


def test_nothing_taken_nothing_to_commit() -> None:
    assert OffsetTracker[str]().to_commit() == {}


def test_commit_stops_at_the_lowest_unfinished_offset() -> None:
    tracker: OffsetTracker[str] = OffsetTracker()
    for offset in (10, 11, 12, 13):
        tracker.start("p", offset)
    assert tracker.to_commit() == {"p": 10}  # nothing finished: resume at the first taken
    tracker.finish("p", 12)
    tracker.finish("p", 13)
    assert tracker.to_commit() == {"p": 10}  # 10 and 11 still in flight
    tracker.finish("p", 10)
    assert tracker.to_commit() == {"p": 11}
    tracker.finish("p", 11)
    assert tracker.to_commit() == {"p": 14}
    assert tracker.unfinished("p") == 0


def test_offsets_with_gaps_commit_past_the_gap_once_all_taken_are_done() -> None:
    tracker: OffsetTracker[str] = OffsetTracker()
    tracker.start("p", 5)
    tracker.start("p", 9)  # 6-8: transaction markers, compacted away, or skipped while paused
    tracker.finish("p", 9)
    assert tracker.to_commit() == {"p": 5}
    tracker.finish("p", 5)
    assert tracker.to_commit() == {"p": 10}


def test_committed_offsets_are_not_offered_again_and_partitions_are_independent() -> None:
    tracker: OffsetTracker[str] = OffsetTracker()
    tracker.start("a", 0)
    tracker.start("b", 0)
    tracker.finish("a", 0)
    assert tracker.to_commit() == {"a": 1, "b": 0}
    tracker.committed({"a": 1, "b": 0})
    assert tracker.to_commit() == {}
    tracker.finish("b", 0)
    assert tracker.to_commit(["b"]) == {"b": 1}
    assert tracker.to_commit(["a"]) == {}


def test_forgotten_partitions_ignore_late_finishes() -> None:
    tracker: OffsetTracker[str] = OffsetTracker()
    tracker.start("p", 3)
    tracker.forget(["p"])
    tracker.finish("p", 3)  # a job of a revoked partition ending after the hand-over
    assert tracker.to_commit() == {}


def test_offsets_must_be_taken_in_order() -> None:
    tracker: OffsetTracker[str] = OffsetTracker()
    tracker.start("p", 7)
    with pytest.raises(ValueError, match="offset 7 taken after 7"):
        tracker.start("p", 7)


def test_random_completion_order_never_commits_an_unfinished_offset() -> None:
    rng = random.Random(606)
    tracker: OffsetTracker[int] = OffsetTracker()
    offsets = list(range(1000))
    for offset in offsets:
        tracker.start(0, offset)
    pending = set(offsets)
    order = offsets[:]
    rng.shuffle(order)
    for offset in order:
        tracker.finish(0, offset)
        pending.discard(offset)
        point = tracker.to_commit().get(0, 0)
        assert point == (min(pending) if pending else 1000)
