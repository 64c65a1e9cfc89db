"""The delivery log's writer and reads on a real PostgreSQL: idempotent batches, first sighting
kept, filters, cursor, stats, partitions created on demand and dropped past retention."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

import orjson
import pytest

from pipeline.db import async_pool, connect
from pipeline.delivery.record import Attempt, Delivery, Outcome
from pipeline.deliverylog import partitions
from pipeline.deliverylog.reads import DeliveryLog
from pipeline.deliverylog.rows import Rows, rows_of
from pipeline.deliverylog.writer import LogWriter
from pipeline.settings import Settings

pytestmark = pytest.mark.postgres
T = TypeVar("T")
DAY = 86_400_000
NOW = int(time.time() * 1000)


def delivery(
    n: int, *, account: str = "acc_a", endpoint: str = "ep_1", event_time: int = NOW
) -> Delivery:
    return Delivery(
        delivery_id=f"dlv_{account}_{n}",
        event_id=f"evt_{n}",
        event_type="order.created" if n % 2 else "payment.captured",
        account_id=account,
        endpoint_id=endpoint,
        body=f'{{"id":"evt_{n}"}}',
        event_time=event_time,
    )


def attempt(d: Delivery, number: int, at: int, outcome: Outcome, status: int = 200) -> Attempt:
    return Attempt(
        delivery_id=d.delivery_id,
        endpoint_id=d.endpoint_id,
        account_id=d.account_id,
        event_id=d.event_id,
        event_type=d.event_type,
        attempt=number,
        at=at,
        status=status,
        error=None,
        latency_ms=3.5,
        response_excerpt="no\x00pe",  # a NUL from a partner must not stop the sink
        outcome=outcome,
        next_attempt_at=at + 5000 if outcome == "retry" else None,
        event_time=d.event_time,
    )


def records(
    deliveries: list[tuple[Delivery, int]], attempts: list[Attempt]
) -> list[tuple[str, bytes | None, int]]:
    out: list[tuple[str, bytes | None, int]] = [("d", d.to_bytes(), at) for d, at in deliveries]
    out.append(("d", b"", NOW))  # a replay's fence: no row
    out.append(("a", b"{not json", NOW))  # unreadable: skipped, not fatal
    out += [("a", a.to_bytes(), a.at) for a in attempts]
    return out


def rows(recs: list[tuple[str, bytes | None, int]], retention_days: float = 30) -> Rows:
    return rows_of(
        recs,
        deliveries_topic="d",
        attempts_topic="a",
        cutoff_ms=partitions.cutoff_ms(NOW, retention_days),
    )


def read(settings: Settings, call: Any) -> Any:
    async def run() -> Any:
        pool = async_pool(settings)
        await pool.open(wait=True)
        try:
            result: Awaitable[Any] = call(DeliveryLog(pool))
            return await result
        finally:
            await pool.close()

    return asyncio.run(run())


def count(settings: Settings, table: str) -> int:
    with connect(settings) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


def test_a_batch_written_twice_adds_nothing_and_the_first_sighting_stays(
    database_settings: Settings,
) -> None:
    settings = database_settings
    ds = [delivery(n) for n in range(5)]
    attempts = [attempt(d, 1, NOW + 10 + n, "delivered") for n, d in enumerate(ds)]
    batch = records([(d, NOW + n) for n, d in enumerate(ds)], attempts)
    writer = LogWriter()
    with connect(settings, autocommit=True) as conn:
        got = rows(batch)
        assert got.skipped == 1  # the unreadable one
        assert writer.write(conn, got) == (5, 5)
        assert writer.write(conn, rows(batch)) == (0, 0)  # the sink killed before its commit
        # a redrive: the same delivery again an hour later, then its new attempt
        redrive = attempt(ds[0], 1, NOW + 3_600_010, "retry", 500)
        later = rows(records([(ds[0], NOW + 3_600_000)], [redrive]))
        assert writer.write(conn, later) == (0, 1)
    assert count(settings, "deliveries") == 5
    assert count(settings, "attempts") == 6
    stats = read(settings, lambda log: log.per_minute("acc_a", endpoint_id=None, since=NOW - DAY))
    assert sum(c.get("delivered", 0) for c in stats.values()) == 5  # not 10: written twice
    assert sum(c.get("retry", 0) for c in stats.values()) == 1

    view = read(settings, lambda log: log.get("acc_a", ds[0].delivery_id))
    assert view.created_at == NOW  # first sighting
    assert [a.outcome for a in view.attempts] == ["delivered", "retry"]
    assert view.status == "retrying" and view.next_attempt_at == NOW + 3_600_010 + 5000
    assert view.attempts[0].response_excerpt == "no\ufffdpe"
    assert view.body == ds[0].body.decode()
    assert read(settings, lambda log: log.get("acc_b", ds[0].delivery_id)) is None


def test_filters_cursor_and_stats(database_settings: Settings) -> None:
    settings = database_settings
    mine = [delivery(n, endpoint=f"ep_{n % 2}") for n in range(7)]
    theirs = [delivery(n, account="acc_b") for n in range(3)]
    outcomes: list[Outcome] = ["delivered", "dead_lettered", "retry"]
    attempts = [attempt(d, 1, NOW + 100 + n, outcomes[n % 3]) for n, d in enumerate(mine)]
    attempts += [attempt(d, 1, NOW + 100, "delivered") for d in theirs]
    seen = [(d, NOW - (7 - n) * 1000) for n, d in enumerate(mine)] + [(d, NOW) for d in theirs]
    with connect(settings, autocommit=True) as conn:
        LogWriter().write(conn, rows(records(seen, attempts)))

    async def pages(log: DeliveryLog, **filters: Any) -> list[list[str]]:
        out, cursor = [], None
        while True:
            page = await log.page("acc_a", limit=2, cursor=cursor, **filters)
            out.append([v.delivery_id for v in page.items])
            if page.next_cursor is None:
                return out
            cursor = page.next_cursor

    ids = [d.delivery_id for d in mine]
    assert read(settings, pages) == [ids[6:4:-1], ids[4:2:-1], ids[2:0:-1], ids[0:1]]
    assert read(settings, lambda log: pages(log, endpoint_id="ep_1")) == [
        [ids[5], ids[3]],
        [ids[1]],
    ]
    failed = read(settings, lambda log: pages(log, status="failed"))
    assert failed == [[ids[4], ids[1]]]
    assert read(settings, lambda log: pages(log, event_type="payment.captured")) == [
        [ids[6], ids[4]],
        [ids[2], ids[0]],
    ]
    everything = read(settings, lambda log: log.page("acc_a", since=-(10**18), until=10**18))
    assert len(everything.items) == 7  # times past what a datetime holds: the widest filter
    since = read(settings, lambda log: pages(log, since=NOW - 3000, until=NOW - 1000))
    assert since == [[ids[5], ids[4]]]
    recover = read(
        settings, lambda log: log.matching("acc_a", endpoint_id=None, status="failed", since=0)
    )
    assert [v.delivery_id for v in recover] == [ids[1], ids[4]]
    assert [v.fresh_delivery() for v in recover] == [mine[1], mine[4]]  # bodies read back
    listed = read(settings, lambda log: log.page("acc_a", limit=1)).items[0]
    assert (listed.attempt_count, listed.status, listed.body) == (1, "delivered", None)

    stats = read(settings, lambda log: log.per_minute("acc_a", endpoint_id=None, since=NOW - DAY))
    assert sum(sum(c.values()) for c in stats.values()) == 7
    assert {o for c in stats.values() for o in c} == {"delivered", "dead_lettered", "retry"}
    one = read(settings, lambda log: log.per_minute("acc_a", endpoint_id="ep_0", since=NOW - DAY))
    assert sum(sum(c.values()) for c in one.values()) == 4

    with pytest.raises(ValueError, match="cursor"):
        read(settings, lambda log: log.page("acc_a", cursor="x"))


def test_partitions_on_demand_and_retention_drops_whole_days(database_settings: Settings) -> None:
    settings = database_settings
    old = [delivery(n, event_time=NOW - 3 * DAY) for n in range(3)]
    new = [delivery(n + 10) for n in range(2)]
    seen = [(d, NOW - 3 * DAY) for d in old] + [(d, NOW) for d in new]
    attempts = [attempt(d, 1, at + 5, "delivered") for d, at in seen]
    writer = LogWriter()
    with connect(settings, autocommit=True) as conn:
        writer.write(conn, rows(records(seen, attempts), retention_days=10))
        days = partitions.existing(conn)
        assert partitions.day_of(NOW - 3 * DAY) in days["deliveries"]
        assert partitions.day_of(NOW) in days["attempts"]

        dropped = writer.maintain(conn, NOW, retention_days=1)
        three_days_ago = f"{partitions.day_of(NOW - 3 * DAY):%Y%m%d}"
        assert sorted(dropped) == [f"attempts_p{three_days_ago}", f"deliveries_p{three_days_ago}"]
        days = partitions.existing(conn)
        assert partitions.upcoming(NOW) <= days["deliveries"] & days["attempts"]
        # past retention now: the old rows are not written again (their day is gone)
        again = rows(records(seen, attempts), retention_days=1)
        assert again.skipped == 1 + 6
        writer.write(conn, again)
    assert count(settings, "deliveries") == 2
    assert count(settings, "attempts") == 2
    stats = read(settings, lambda log: log.per_minute("acc_a", endpoint_id=None, since=0))
    assert sum(sum(c.values()) for c in stats.values()) == 2  # the old days' counts went too


def test_the_status_filter_follows_the_latest_attempt_whatever_comes_first(
    database_settings: Settings,
) -> None:
    settings = database_settings
    early, plain = delivery(1), delivery(2)
    writer = LogWriter()

    async def statuses(log: DeliveryLog) -> dict[str, list[str]]:
        out = {}
        for status in ("pending", "retrying", "delivered", "failed"):
            page = await log.page("acc_a", status=status)  # type: ignore[arg-type]
            out[status] = [v.delivery_id for v in page.items]
        return out

    with connect(settings, autocommit=True) as conn:
        # the attempts topic's batch first: the delivery's row starts from its attempt
        writer.write(conn, rows(records([], [attempt(early, 1, NOW + 10, "retry", 500)])))
        writer.write(conn, rows(records([(early, NOW), (plain, NOW)], [])))
        assert read(settings, statuses) == {
            "pending": [plain.delivery_id],
            "retrying": [early.delivery_id],
            "delivered": [],
            "failed": [],
        }
        batch = [attempt(early, 2, NOW + 20, "dead_lettered", 500)]
        batch.append(attempt(plain, 1, NOW + 30, "delivered"))
        writer.write(conn, rows(records([], batch)))
        writer.write(conn, rows(records([], batch)))  # again: nothing moves
        # an older attempt read late does not take the status back
        writer.write(conn, rows(records([], [attempt(plain, 1, NOW + 5, "retry", 500)])))
    assert read(settings, statuses) == {
        "pending": [],
        "retrying": [],
        "delivered": [plain.delivery_id],
        "failed": [early.delivery_id],
    }
    got = read(settings, lambda log: log.get("acc_a", plain.delivery_id))
    assert got.status == "delivered" and got.attempt_count == 2


def test_rows_of_an_older_day_are_found_by_a_later_batch(database_settings: Settings) -> None:
    """The writer looks deliveries up only in the days its batch's event times allow: a
    delivery first seen three days ago is still found by today's redrive and attempts, and an
    attempt from a version that did not record its event's time searches every day."""
    settings = database_settings
    old, new = delivery(1, event_time=NOW - 3 * DAY), delivery(2)
    writer = LogWriter()
    with connect(settings, autocommit=True) as conn:
        assert writer.write(conn, rows(records([(old, NOW - 3 * DAY)], []))) == (1, 0)
        today = [attempt(old, 2, NOW + 10, "delivered"), attempt(new, 1, NOW + 20, "retry", 503)]
        assert writer.write(conn, rows(records([(old, NOW), (new, NOW)], today))) == (1, 2)
        legacy = orjson.loads(attempt(old, 3, NOW + 30, "dead_lettered", 500).to_bytes())
        del legacy["event_time"]
        assert writer.write(conn, rows([("a", orjson.dumps(legacy), NOW + 30)])) == (0, 1)
    assert count(settings, "deliveries") == 2  # the redrive added no second row
    got = read(settings, lambda log: log.get("acc_a", old.delivery_id))
    assert got.created_at == NOW - 3 * DAY and [a.attempt for a in got.attempts] == [2, 3]
    for status, which in (("failed", old), ("retrying", new)):  # the column the filter reads
        page = read(settings, lambda log, s=status: log.page("acc_a", status=s))
        assert [v.delivery_id for v in page.items] == [which.delivery_id]
