"""How Kafka records become the delivery log's rows: the day bounds the writer prunes with."""

from __future__ import annotations

import orjson

from pipeline.delivery.record import Attempt, Delivery
from pipeline.deliverylog.rows import CLOCK_SKEW_MS, Rows, rows_of

NOW = 1_790_000_000_000
HOUR = 3_600_000


def delivery(n: int, event_time: int) -> Delivery:
    return Delivery(
        delivery_id=f"dlv_{n}",
        event_id=f"evt_{n}",
        event_type="order.created",
        account_id="acc_a",
        endpoint_id="ep_1",
        body=b'{"id":"evt"}',
        event_time=event_time,
    )


def attempt(d: Delivery, at: int, *, event_time: int | None) -> Attempt:
    return Attempt(
        delivery_id=d.delivery_id,
        endpoint_id=d.endpoint_id,
        account_id=d.account_id,
        event_id=d.event_id,
        event_type=d.event_type,
        attempt=1,
        at=at,
        status=200,
        error=None,
        latency_ms=1.0,
        response_excerpt="",
        outcome="delivered",
        event_time=event_time,
    )


def of(records: list[tuple[str, bytes, int]]) -> Rows:
    return rows_of(records, deliveries_topic="d", attempts_topic="a", cutoff_ms=0)


def test_created_at_is_the_first_sighting_never_long_before_the_event() -> None:
    on_time, late, ahead = (
        delivery(1, NOW - 2 * HOUR),
        delivery(2, NOW - 5 * HOUR),
        delivery(3, NOW + 3 * HOUR),
    )  # ahead: its publisher's clock runs three hours fast
    got = of([("d", d.to_bytes(), NOW) for d in (on_time, late, ahead)])
    assert [row[1] for row in got.deliveries] == [NOW, NOW, NOW + 3 * HOUR - CLOCK_SKEW_MS]
    # no row of the batch can be older than its least event time less the margin
    assert got.deliveries_since_ms == NOW - 5 * HOUR - CLOCK_SKEW_MS
    assert got.deliveries_seen_ms == NOW


def test_attempts_bound_their_deliveries_days_unless_one_came_from_an_older_version() -> None:
    old, new = delivery(1, NOW - 3 * 24 * HOUR), delivery(2, NOW)
    both = [attempt(old, NOW, event_time=old.event_time), attempt(new, NOW, event_time=NOW)]
    got = of([("a", a.to_bytes(), NOW) for a in both])
    assert got.attempts_since_ms == old.event_time - CLOCK_SKEW_MS

    legacy = orjson.loads(attempt(new, NOW, event_time=None).to_bytes())
    del legacy["event_time"]  # written before attempts carried it
    records = [("a", orjson.dumps(legacy), NOW), *(("a", a.to_bytes(), NOW) for a in both)]
    got = of(records)
    assert len(got.attempts) == 3 and got.attempts_since_ms is None  # every day searched


def test_records_of_a_newer_version_are_read_and_impossible_days_skipped() -> None:
    d = delivery(1, NOW)
    newer = orjson.loads(attempt(d, NOW, event_time=NOW).to_bytes()) | {"added_later": 1}
    assert Attempt.from_bytes(orjson.dumps(newer)) == attempt(d, NOW, event_time=NOW)

    far = delivery(2, 260_000_000_000_000)  # the year 10208: no day partition can hold it
    got = of([("d", far.to_bytes(), NOW), ("a", b"[1, 2]", NOW)])
    assert got.deliveries == [] and got.skipped == 2
