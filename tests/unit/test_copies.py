"""Fan-out copies: which records the sender takes for a copy of one it saw before."""

from __future__ import annotations

from pipeline.delivery.copies import FANOUT_HEADER, RecentFanouts, fanout_id

WINDOW = 60_000


def test_a_later_record_with_the_same_id_is_a_copy() -> None:
    memory: RecentFanouts[int] = RecentFanouts(WINDOW)
    assert not memory.is_copy(0, "dlv_a", 10, 1_000)
    assert not memory.is_copy(0, "dlv_b", 11, 1_000)
    assert memory.is_copy(0, "dlv_a", 12, 2_000)
    assert memory.is_copy(0, "dlv_a", 13, 2_000)  # a second copy too


def test_the_first_record_read_again_after_a_seek_is_not_its_own_copy() -> None:
    memory: RecentFanouts[int] = RecentFanouts(WINDOW)
    assert not memory.is_copy(0, "dlv_a", 10, 1_000)
    assert not memory.is_copy(0, "dlv_a", 10, 1_000)


def test_partitions_are_apart() -> None:
    memory: RecentFanouts[int] = RecentFanouts(WINDOW)
    assert not memory.is_copy(0, "dlv_a", 10, 1_000)
    assert not memory.is_copy(1, "dlv_a", 11, 1_000)


def test_records_older_than_the_window_are_forgotten() -> None:
    memory: RecentFanouts[int] = RecentFanouts(WINDOW)
    assert not memory.is_copy(0, "dlv_a", 10, 1_000)
    assert not memory.is_copy(0, "dlv_b", 11, 1_000 + WINDOW)  # dlv_a still inside
    assert memory.is_copy(0, "dlv_a", 12, 1_000 + WINDOW)
    assert not memory.is_copy(0, "dlv_c", 13, 2_001 + WINDOW)  # dlv_a now out
    assert len(memory) == 2
    assert not memory.is_copy(0, "dlv_a", 14, 2_001 + WINDOW)


def test_forget_drops_a_partition() -> None:
    memory: RecentFanouts[int] = RecentFanouts(WINDOW)
    memory.is_copy(0, "dlv_a", 10, 1_000)
    memory.is_copy(1, "dlv_b", 10, 1_000)
    memory.forget([0])
    assert len(memory) == 1
    assert not memory.is_copy(0, "dlv_a", 11, 1_000)


def test_a_zero_window_turns_it_off() -> None:
    memory: RecentFanouts[int] = RecentFanouts(0)
    assert not memory.is_copy(0, "dlv_a", 10, 1_000)
    assert not memory.is_copy(0, "dlv_a", 11, 1_000)


def test_only_the_fanout_header_names_a_copy() -> None:
    assert fanout_id([("x", b"1"), (FANOUT_HEADER, b"dlv_a")]) == "dlv_a"
    assert fanout_id([("velourcity-replay", b"dlv_a")]) is None
    assert fanout_id(None) is None
