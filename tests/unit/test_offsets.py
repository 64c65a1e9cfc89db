"""The commit point when records finish out of order: never past an unfinished record."""

from __future__ import annotations

import random

import pytest

from pipeline.delivery.offsets import OffsetTracker, decode_finished, encode_finished


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


# Records finished past the commit travel as its metadata --------------------------------


def test_finished_offsets_round_trip_through_the_metadata() -> None:
    finished = [11, 12, 15, 40, 1000]
    metadata = encode_finished(10, finished)
    assert len(metadata) < 4096  # Kafka's default offset.metadata.max.bytes
    assert decode_finished(10, metadata) == set(finished)
    assert encode_finished(10, []) == ""
    assert decode_finished(10, "") == set()
    assert decode_finished(10, "written by someone else") == set()
    assert decode_finished(10, "finished:v1:not base64!") == set()


def test_the_commit_carries_the_records_finished_past_it() -> None:
    tracker: OffsetTracker[str] = OffsetTracker()
    for offset in (10, 11, 12, 13):
        tracker.start("p", offset)
    tracker.finish("p", 11)
    tracker.finish("p", 13)
    commits = tracker.to_commit_with_metadata()
    assert commits["p"][0] == 10
    assert decode_finished(10, commits["p"][1]) == {11, 13}
    tracker.committed_with_metadata(commits)
    assert tracker.to_commit_with_metadata() == {}  # nothing moved
    tracker.finish("p", 12)  # the offset stays at 10, the metadata changes
    assert decode_finished(10, tracker.to_commit_with_metadata()["p"][1]) == {11, 12, 13}


def test_the_next_owner_skips_what_the_previous_one_finished() -> None:
    before: OffsetTracker[str] = OffsetTracker()
    for offset in range(10, 15):
        before.start("p", offset)
    for offset in (11, 13):
        before.finish("p", offset)
    offset, metadata = before.to_commit_with_metadata()["p"]  # then SIGKILL

    after: OffsetTracker[str] = OffsetTracker()
    after.restore("p", offset, metadata)
    assert after.to_commit_with_metadata() == {}  # restoring never moves the commit back
    done = []
    for o in range(10, 15):  # read again in order from the commit
        if not after.skip("p", o):
            after.start("p", o)
            done.append(o)
    assert done == [10, 12, 14]  # 11 and 13 are not done again
    for o in done:
        after.finish("p", o)
    assert after.to_commit_with_metadata() == {"p": (15, "")}


def test_a_restored_partition_keeps_unreached_finished_offsets_in_its_commits() -> None:
    tracker: OffsetTracker[str] = OffsetTracker()
    tracker.restore("p", 10, encode_finished(10, [12, 14]))
    tracker.start("p", 10)
    tracker.finish("p", 10)
    # 11 not read yet: the commit is 11, and 12 and 14 are still known to be finished
    offset, metadata = tracker.to_commit_with_metadata()["p"]
    assert offset == 11
    assert decode_finished(11, metadata) == {12, 14}


def test_nothing_committed_before_restores_nothing() -> None:
    tracker: OffsetTracker[str] = OffsetTracker()
    tracker.restore("p", -1, "")
    assert tracker.to_commit_with_metadata() == {}
    assert not tracker.skip("p", 0)
