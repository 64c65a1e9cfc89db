"""Endpoints the workers disabled, written back into PostgreSQL.

The hot path never touches PostgreSQL, so a worker that disables an endpoint (a ``410 Gone``, or
failing for ``auto_disable_days``) writes the disabled record straight to the compacted
endpoints topic. Without this, the database would still say "enabled" and the next change
through the API would switch the endpoint back on. :class:`WorkerDisables` follows the topic
and applies such a record as a field-level change (``enabled``, ``disabled_reason``), only if
it is newer than the row (its ``updated_at``): an owner's later enable wins, a replay of old
records changes nothing. The change goes through the outbox like any other.
"""

from __future__ import annotations

from typing import Any

import orjson
import psycopg
import structlog
from psycopg import sql
from psycopg.rows import dict_row

from pipeline.compacted import CompactedReader
from pipeline.controlplane.store import NOTIFY_CHANNEL, SELECT_ENDPOINT, endpoint_from_row
from pipeline.db import connect
from pipeline.endpoints.model import Endpoint
from pipeline.exceptions import DatabaseUnavailable
from pipeline.settings import Settings
from pipeline.topics import ENDPOINTS

log = structlog.get_logger(__name__)


class WorkerDisables:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._conn: psycopg.Connection[Any] | None = None
        self._reader = CompactedReader(settings, settings.topic(ENDPOINTS), self._apply)

    def start(self) -> WorkerDisables:
        self._reader.start()
        return self

    def stop(self) -> None:
        self._reader.stop()
        if self._conn is not None:
            self._conn.close()

    def _apply(self, endpoint_id: str, value: bytes | None) -> None:
        if value is None or b'"enabled":false' not in value:  # the common case, unparsed
            return
        try:
            endpoint = Endpoint.from_json(value)
        except (orjson.JSONDecodeError, TypeError, ValueError):
            return  # the workers' cache logs unreadable records
        try:
            self._write_back(endpoint)
        except (DatabaseUnavailable, psycopg.Error) as exc:
            # The database down: this disable is not written back now; the workers have it.
            log.warning("worker disable not written back", endpoint_id=endpoint_id, error=str(exc))
            if self._conn is not None:
                self._conn.close()
            self._conn = None

    def _write_back(self, endpoint: Endpoint) -> None:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self._settings)
        with self._conn.transaction():
            updated = self._conn.execute(
                "UPDATE endpoints SET enabled = false, disabled_reason = %s, updated_at = %s,"
                " version = version + 1 WHERE id = %s AND enabled AND updated_at < %s",
                (endpoint.disabled_reason, endpoint.updated_at, endpoint.id, endpoint.updated_at),
            )
            if updated.rowcount == 0:
                return  # already disabled, or changed since: the row is newer
            cursor = self._conn.cursor(row_factory=dict_row)
            cursor.execute(SELECT_ENDPOINT + sql.SQL(" WHERE id = %s"), (endpoint.id,))
            row = cursor.fetchone()
            assert row is not None  # updated by this transaction
            # The row's record, not the worker's: the row may hold changes the worker's copy
            # had not seen yet.
            stored = endpoint_from_row(row)
            self._conn.execute(
                "INSERT INTO outbox (topic, key, value) VALUES (%s, %s, %s)",
                (ENDPOINTS, endpoint.id, stored.endpoint.to_json()),
            )
            self._conn.execute(sql.SQL("NOTIFY {}").format(sql.Identifier(NOTIFY_CHANNEL)))
        log.info("endpoint disabled by a worker", endpoint_id=endpoint.id, version=stored.version)
