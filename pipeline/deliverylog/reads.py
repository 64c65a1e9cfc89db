"""The API's reads of the delivery log: SQL that the tables' indexes fit (migrations 0001,
0003 and 0004).

- a page of deliveries: newest first by (created_at, delivery_id) on the account's, the
  account's and status', or the endpoint's index, the cursor being the last pair of the page
  before; each row's attempt count and last attempt come from the attempts primary key
  (delivery_id, at, attempt);
- one delivery: its row, then its attempts in order, both by delivery id;
- per-minute stats: ``attempt_minutes`` (kept by the sink), by account or endpoint and minute.

Nothing is held in memory between requests. A database that cannot be reached raises
:class:`~pipeline.exceptions.DatabaseUnavailable` (the API answers 503).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from pipeline.db import unavailable_as_error
from pipeline.delivery.record import Attempt
from pipeline.deliverylog.model import DeliveryView, Page, Status

# A delivery's attempts are looked up from its first sighting less an hour (the clocks of the
# fan-out and the sender may differ), so older attempt partitions are skipped.
_LIST = """
SELECT d.delivery_id, d.event_id, d.event_type, d.account_id, d.endpoint_id,
       (extract(epoch FROM d.created_at) * 1000)::bigint, {body}, d.event_time, n.count,
       l.attempt, (extract(epoch FROM l.at) * 1000)::bigint, l.status, l.error, l.latency_ms,
       l.response_excerpt, l.outcome, (extract(epoch FROM l.next_attempt_at) * 1000)::bigint
FROM deliveries d
LEFT JOIN LATERAL (
    SELECT * FROM attempts a
    WHERE a.delivery_id = d.delivery_id AND a.at >= d.created_at - interval '1 hour'
    ORDER BY a.at DESC, a.attempt DESC LIMIT 1
) l ON true
CROSS JOIN LATERAL (
    SELECT count(*) FROM attempts a
    WHERE a.delivery_id = d.delivery_id AND a.at >= d.created_at - interval '1 hour'
) n
WHERE {where}
ORDER BY d.created_at {order}, d.delivery_id {order}
{limit}
"""

_ATTEMPTS = """
SELECT a.attempt, (extract(epoch FROM a.at) * 1000)::bigint, a.status, a.error, a.latency_ms,
       a.response_excerpt, a.outcome, (extract(epoch FROM a.next_attempt_at) * 1000)::bigint
FROM attempts a
WHERE a.delivery_id = %(id)s AND a.at >= %(created)s - interval '1 hour'
ORDER BY a.at, a.attempt
"""

_PER_MINUTE = """
SELECT (extract(epoch FROM m.minute) * 1000)::bigint, m.outcome, sum(m.attempts)::bigint
FROM attempt_minutes m
WHERE {who} AND m.minute >= date_trunc('minute', %(since)s)
GROUP BY 1, 2
ORDER BY 1
"""


_MIN_MS = -62_135_596_800_000  # 0001-01-01T00:00:00Z: datetime's first millisecond
_MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z: its last


def _time(ms: int) -> dt.datetime:
    """A filter's time as a datetime; one past what datetime holds (``since=-99999999d``) is
    the earliest or latest it holds, which filters the same."""
    ms = min(max(ms, _MIN_MS), _MAX_MS)
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=ms)


def _attempt(view: tuple[Any, ...], row: tuple[Any, ...]) -> Attempt:
    delivery_id, event_id, event_type, account_id, endpoint_id = view
    attempt, at, status, error, latency_ms, excerpt, outcome, next_at = row
    return Attempt(
        delivery_id=delivery_id,
        endpoint_id=endpoint_id,
        account_id=account_id,
        event_id=event_id,
        event_type=event_type,
        attempt=attempt,
        at=at,
        status=status,
        error=error,
        latency_ms=latency_ms,
        response_excerpt=excerpt,
        outcome=outcome,
        next_attempt_at=next_at,
    )


def _view(row: tuple[Any, ...], attempts: tuple[Attempt, ...] = ()) -> DeliveryView:
    ids = row[0:5]
    last = None if row[9] is None else _attempt(ids, row[9:17])
    return DeliveryView(
        delivery_id=row[0],
        event_id=row[1],
        event_type=row[2],
        account_id=row[3],
        endpoint_id=row[4],
        created_at=row[5],
        body=row[6],
        event_time=row[7],
        attempt_count=row[8],
        last_attempt=last,
        attempts=attempts,
    )


def encode_cursor(view: DeliveryView) -> str:
    return f"c{view.created_at}_{view.delivery_id}"


def decode_cursor(cursor: str) -> tuple[int, str]:
    """The (created_at ms, delivery id) a cursor stands for; ValueError for anything else."""
    created, _, delivery_id = cursor[1:].partition("_")
    if not (cursor.startswith("c") and created.isdigit() and delivery_id):
        raise ValueError("cursor: not a cursor this API gave out")
    if len(created) > 15 or int(created) > _MAX_MS:
        raise ValueError("cursor: not a cursor this API gave out")
    return int(created), delivery_id


class DeliveryLog:
    """The SQL-backed reader the API uses (one pool per API process)."""

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self._pool = pool

    async def _fetch(self, query: sql.Composable, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        with unavailable_as_error("delivery log"):
            async with self._pool.connection() as conn:
                cur = await conn.execute(query, params)
                rows: list[tuple[Any, ...]] = await cur.fetchall()
                return rows

    async def _deliveries(
        self,
        conditions: list[sql.Composable],
        params: dict[str, Any],
        *,
        newest_first: bool,
        limit: int | None,
        with_body: bool,
    ) -> list[DeliveryView]:
        query = sql.SQL(_LIST).format(
            body=sql.SQL("d.body" if with_body else "NULL"),
            where=sql.SQL(" AND ").join(conditions),
            order=sql.SQL("DESC" if newest_first else "ASC"),
            limit=sql.SQL("LIMIT %(limit)s" if limit is not None else ""),
        )
        return [_view(row) for row in await self._fetch(query, params | {"limit": limit})]

    async def page(
        self,
        account_id: str,
        *,
        endpoint_id: str | None = None,
        event_type: str | None = None,
        status: Status | None = None,
        since: int | None = None,
        until: int | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        """Newest first. ``cursor`` is the opaque ``next_cursor`` of the page before."""
        conditions, params = _filters(account_id, endpoint_id, event_type, status, since, until)
        if cursor:
            created, delivery_id = decode_cursor(cursor)
            conditions.append(sql.SQL("(d.created_at, d.delivery_id) < (%(c_at)s, %(c_id)s)"))
            params |= {"c_at": _time(created), "c_id": delivery_id}
        views = await self._deliveries(
            conditions, params, newest_first=True, limit=limit + 1, with_body=False
        )
        more = len(views) > limit
        views = views[:limit]
        return Page(views, encode_cursor(views[-1]) if more else None)

    async def matching(
        self, account_id: str, *, endpoint_id: str | None, status: Status, since: int
    ) -> list[DeliveryView]:
        """Every delivery of the filter, oldest first, bodies included (for "recover since")."""
        conditions, params = _filters(account_id, endpoint_id, None, status, since, None)
        return await self._deliveries(
            conditions, params, newest_first=False, limit=None, with_body=True
        )

    async def get(self, account_id: str, delivery_id: str) -> DeliveryView | None:
        conditions, params = _filters(account_id, None, None, None, None, None)
        conditions.append(sql.SQL("d.delivery_id = %(delivery_id)s"))
        params["delivery_id"] = delivery_id
        found = await self._deliveries(
            conditions, params, newest_first=False, limit=1, with_body=True
        )
        if not found:
            return None
        view = found[0]
        params = {"id": delivery_id, "created": _time(view.created_at)}
        rows = await self._fetch(sql.SQL(_ATTEMPTS), params)
        ids = (view.delivery_id, view.event_id, view.event_type, view.account_id, view.endpoint_id)
        attempts = tuple(_attempt(ids, row) for row in rows)
        return dataclasses.replace(view, attempts=attempts)

    async def per_minute(
        self, account_id: str, *, endpoint_id: str | None, since: int
    ) -> dict[int, dict[str, int]]:
        """Attempts per minute (unix ms of the minute) by outcome, from the minute of ``since``
        on (that minute whole)."""
        who = "m.account_id = %(account)s"
        if endpoint_id is not None:  # the endpoint's index; the account still scopes it
            who += " AND m.endpoint_id = %(endpoint)s"
        query = sql.SQL(_PER_MINUTE).format(who=sql.SQL(who))
        params = {"account": account_id, "endpoint": endpoint_id, "since": _time(since)}
        buckets: dict[int, dict[str, int]] = {}
        for minute, outcome, count in await self._fetch(query, params):
            buckets.setdefault(minute, {})[outcome] = count
        return buckets


def _filters(
    account_id: str,
    endpoint_id: str | None,
    event_type: str | None,
    status: Status | None,
    since: int | None,
    until: int | None,
) -> tuple[list[sql.Composable], dict[str, Any]]:
    conditions: list[sql.Composable] = [sql.SQL("d.account_id = %(account)s")]
    params: dict[str, Any] = {"account": account_id}
    if endpoint_id is not None:
        conditions.append(sql.SQL("d.endpoint_id = %(endpoint)s"))
        params["endpoint"] = endpoint_id
    if event_type is not None:
        conditions.append(sql.SQL("d.event_type = %(event_type)s"))
        params["event_type"] = event_type
    if status is not None:
        conditions.append(sql.SQL("d.status = %(status)s"))
        params["status"] = status
    if since is not None:
        conditions.append(sql.SQL("d.created_at >= %(since)s"))
        params["since"] = _time(since)
    if until is not None:
        conditions.append(sql.SQL("d.created_at < %(until)s"))
        params["until"] = _time(until)
    return conditions, params
