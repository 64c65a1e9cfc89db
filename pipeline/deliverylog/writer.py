"""Writes a batch of rows into the delivery log in one transaction: idempotent, so a batch
written again (the sink killed after the database commit, before the Kafka commit) adds nothing.

Deliveries are keyed by delivery id: a delivery id seen again later (a redrive, a manual retry,
a replay) keeps its first row. Attempts are keyed by (delivery id, at, attempt number). Each
statement takes every row of the batch as one array per column (``unnest``): one round trip,
one plan, however many rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from pipeline.deliverylog import partitions
from pipeline.deliverylog.model import status_sql
from pipeline.deliverylog.rows import CLOCK_SKEW_MS, Rows

PARTITION_LOCK = 0x76_656C_6F76  # serializes partition DDL between sinks (several API processes)

_INSERT_DELIVERIES = sql.SQL("""
INSERT INTO deliveries (delivery_id, created_at, account_id, endpoint_id, event_id, event_type,
                        event_time, body, status, last_attempt_at)
SELECT u.delivery_id, to_timestamp(u.created_ms / 1000.0), u.account_id, u.endpoint_id,
       u.event_id, u.event_type, u.event_time, u.body, {status}, l.at
FROM unnest(%(delivery_id)s::text[], %(created_ms)s::bigint[], %(account_id)s::text[],
            %(endpoint_id)s::text[], %(event_id)s::text[], %(event_type)s::text[],
            %(event_time)s::bigint[], %(body)s::text[])
     AS u(delivery_id, created_ms, account_id, endpoint_id, event_id, event_type, event_time, body)
LEFT JOIN LATERAL (
    SELECT a.at, a.outcome FROM attempts a
    WHERE a.delivery_id = u.delivery_id AND a.at >= %(attempts_since)s
    ORDER BY a.at DESC, a.attempt DESC LIMIT 1
) l ON true  -- attempts already written (their topic's batch came first)
WHERE NOT EXISTS (
    SELECT 1 FROM deliveries d
    WHERE d.delivery_id = u.delivery_id AND d.created_at >= %(since)s
)
ON CONFLICT DO NOTHING
""").format(status=sql.SQL(status_sql("l.outcome")))
# NOT EXISTS is safe without a unique delivery id across partitions: every record of one
# delivery id is on one partition of the deliveries topic (keyed by endpoint id), so one sink
# writes them, in order; two sinks on one partition (a rebalance) write the same records, which
# the primary key (delivery_id, created_at) catches. ``since`` (rows.py) lets the planner skip
# the days no row of the batch can be in; ``attempts_since`` skips attempts made over an hour
# before the batch's earliest delivery was produced.
_DELIVERY_COLUMNS = (
    "delivery_id", "created_ms", "account_id", "endpoint_id", "event_id", "event_type",
    "event_time", "body",
)  # fmt: skip

_INSERT_ATTEMPTS = sql.SQL("""
WITH new AS (
    INSERT INTO attempts (delivery_id, at, attempt, account_id, endpoint_id, event_id,
                          event_type, status, error, latency_ms, response_excerpt, outcome,
                          next_attempt_at)
    SELECT u.delivery_id, to_timestamp(u.at_ms / 1000.0), u.attempt, u.account_id,
           u.endpoint_id, u.event_id, u.event_type, u.status, u.error, u.latency_ms,
           u.response_excerpt, u.outcome, to_timestamp(u.next_ms / 1000.0)
    FROM unnest(%s::text[], %s::bigint[], %s::int[], %s::text[], %s::text[], %s::text[],
                %s::text[], %s::int[], %s::text[], %s::float8[], %s::text[], %s::text[],
                %s::bigint[])
         AS u(delivery_id, at_ms, attempt, account_id, endpoint_id, event_id, event_type,
              status, error, latency_ms, response_excerpt, outcome, next_ms)
    ON CONFLICT DO NOTHING
    RETURNING delivery_id, at, attempt, outcome, account_id, endpoint_id
), minutes AS (
    INSERT INTO attempt_minutes (account_id, endpoint_id, minute, outcome, attempts)
    SELECT account_id, endpoint_id, date_trunc('minute', at), outcome, count(*)
    FROM new GROUP BY 1, 2, 3, 4
    ON CONFLICT (account_id, minute, endpoint_id, outcome)
    DO UPDATE SET attempts = attempt_minutes.attempts + excluded.attempts
), latest AS (
    SELECT DISTINCT ON (delivery_id) delivery_id, at, outcome
    FROM new ORDER BY delivery_id, at DESC, attempt DESC
), status AS (
    UPDATE deliveries d SET status = {status}, last_attempt_at = latest.at
    FROM latest
    WHERE d.delivery_id = latest.delivery_id AND d.created_at >= %s
      AND (d.last_attempt_at IS NULL OR d.last_attempt_at <= latest.at)
)
SELECT count(*) FROM new
""").format(status=sql.SQL(status_sql("latest.outcome")))
# Only attempts new to the table move a delivery's status (only forward in time) and the
# per-minute counts: a batch written again, or an older attempt read late, changes nothing.


# Both statements run unprepared (``prepare=False``): planned each time with the batch's bounds
# and the partitions' current sizes. Prepared, PostgreSQL settles on a generic plan made while the
# day's partition was still empty (a sequential scan of it, once per row) and keeps it until
# autovacuum analyzes the day: measured 0.3 s a batch of 5,000 growing to 8 s within 25,000 rows.


def _columns(rows: Sequence[tuple[Any, ...]]) -> list[list[Any]]:
    """Rows as one list per column (the arrays ``unnest`` takes)."""
    return [list(column) for column in zip(*rows, strict=True)]


def _time(ms: int | None) -> dt.datetime:
    """A bound as a constant the planner prunes partitions with; None: no bound."""
    return dt.datetime.fromtimestamp((ms or 0) / 1000, dt.UTC)


class LogWriter:
    """Holds what it knows of the partitions; one per connection."""

    def __init__(self) -> None:
        self._days: set[dt.date] = set()

    def forget_partitions(self) -> None:
        """After a reconnect or a retention run: read them again before the next write."""
        self._days.clear()

    def ensure_partitions(self, conn: psycopg.Connection[Any], days: set[dt.date]) -> None:
        if not self._days:
            self._days = set().union(*partitions.existing(conn).values())
        missing = days - self._days
        if missing:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (PARTITION_LOCK,))
                partitions.create(conn, missing)
            self._days |= missing

    def write(self, conn: psycopg.Connection[Any], rows: Rows) -> tuple[int, int]:
        """Write the rows (creating the partitions they need); return how many deliveries and
        attempts were new."""
        self.ensure_partitions(conn, {partitions.day_of(ms) for ms in rows.days_ms})
        with conn.transaction():
            new_deliveries = new_attempts = 0
            if rows.deliveries:
                params: dict[str, Any] = dict(
                    zip(_DELIVERY_COLUMNS, _columns(rows.deliveries), strict=True)
                )
                params["since"] = _time(rows.deliveries_since_ms)
                params["attempts_since"] = _time((rows.deliveries_seen_ms or 0) - CLOCK_SKEW_MS)
                cur = conn.execute(_INSERT_DELIVERIES, params, prepare=False)
                new_deliveries = cur.rowcount
            if rows.attempts:
                columns = [*_columns(rows.attempts), _time(rows.attempts_since_ms)]
                row = conn.execute(_INSERT_ATTEMPTS, columns, prepare=False).fetchone()
                new_attempts = row[0] if row else 0
        return new_deliveries, new_attempts

    def maintain(
        self, conn: psycopg.Connection[Any], now_ms: int, retention_days: float
    ) -> list[str]:
        """Create the coming days' partitions and drop those past retention (and the per-minute
        counts of those days: a small table, one row per endpoint, minute and outcome)."""
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (PARTITION_LOCK,))
            dropped = partitions.drop_expired(conn, now_ms, retention_days)
            partitions.create(conn, partitions.upcoming(now_ms))
            conn.execute(
                "DELETE FROM attempt_minutes WHERE minute < %s",
                (partitions.day_start(partitions.cutoff_ms(now_ms, retention_days)),),
            )
        self.forget_partitions()
        return dropped
