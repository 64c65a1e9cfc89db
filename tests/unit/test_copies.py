"""Fan-out copies: which records the sender takes for a copy of one it saw before."""

from __future__ import annotations

from pipeline.delivery.copies import FANOUT_HEADER, DeliveredBefore, RecentFanouts, fanout_id
from pipeline.delivery.record import Attempt

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


def _log(delivery_id: str, attempt: int, at: int, outcome: str = "delivered") -> bytes:
    return Attempt(
        delivery_id=delivery_id,
        endpoint_id="ep_1",
        account_id="acct_a",
        event_id="evt_1",
        event_type="order.created",
        attempt=attempt,
        at=at,
        status=200 if outcome == "delivered" else 500,
        error=None,
        latency_ms=1.0,
        response_excerpt="",
        outcome=outcome,  # type: ignore[arg-type]
    ).to_bytes()


def test_a_delivered_attempt_covers_the_record_that_asked_for_it() -> None:
    delivered = DeliveredBefore()
    assert delivered.add(3, _log("dlv_a", 2, at=5_000))
    assert delivered.covers(3, "dlv_a", 2, written_ms=4_000)
    assert not delivered.covers(3, "dlv_a", 1, written_ms=4_000)  # another attempt
    assert not delivered.covers(4, "dlv_a", 2, written_ms=4_000)  # another partition


def test_a_record_written_after_the_success_is_a_resend() -> None:
    delivered = DeliveredBefore()
    delivered.add(0, _log("dlv_a", 1, at=5_000))
    assert not delivered.covers(0, "dlv_a", 1, written_ms=6_000)


def test_only_delivered_attempts_count_and_junk_is_ignored() -> None:
    delivered = DeliveredBefore()
    assert not delivered.add(0, _log("dlv_a", 1, at=5_000, outcome="retry"))
    assert not delivered.add(0, _log("dlv_b", 1, at=5_000, outcome="dead_lettered"))
    assert not delivered.add(0, b"not json")
    assert not delivered.add(0, b'{"outcome": "delivered"}')
    assert not delivered.covers(0, "dlv_a", 1, written_ms=0)
    delivered.add(0, _log("dlv_c", 1, at=5_000))
    delivered.forget([0])
    assert not delivered.covers(0, "dlv_c", 1, written_ms=0)
