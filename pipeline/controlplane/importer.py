"""The one-time import of the compacted accounts and endpoints topics into PostgreSQL.

Before the control plane lived in PostgreSQL the compacted topics were the record. The first
``velourcity db migrate`` (or the first API start) copies what they hold into the tables, in one
transaction with a row in ``control_plane_import``; once that row is there, the import is done
and never reads Kafka again. No outbox rows: those records are on the topics already.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

import structlog
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from pipeline.accounts.model import Account
from pipeline.compacted import CompactedReader
from pipeline.controlplane.store import endpoint_params
from pipeline.db import connect, unavailable_as_error
from pipeline.endpoints.model import Endpoint
from pipeline.exceptions import BrokerUnavailable
from pipeline.kafka.connection import librdkafka_config
from pipeline.settings import Settings
from pipeline.topics import ACCOUNTS, ENDPOINTS

log = structlog.get_logger(__name__)

IMPORT_LOCK = 0x696D_706F  # "impo": several API processes starting at once import once
READ_SECONDS = 60.0
METADATA_SECONDS = 10.0
"""How long to wait for the broker to list its topics before giving up (BrokerUnavailable)."""
T = TypeVar("T")


def import_from_kafka(settings: Settings) -> tuple[int, int] | None:
    """Import once; returns (accounts, endpoints) imported, or ``None`` if done before."""
    with connect(settings) as conn, unavailable_as_error("import"):
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (IMPORT_LOCK,))
        if conn.execute("SELECT 1 FROM control_plane_import").fetchone() is not None:
            return None
        try:
            accounts = _parsed(_read(settings, ACCOUNTS), Account.from_json)
            endpoints = _parsed(_read(settings, ENDPOINTS), Endpoint.from_json)
        except (KafkaException, TimeoutError) as exc:
            message = f"import from Kafka: the broker did not answer ({exc}); nothing imported"
            raise BrokerUnavailable(message) from exc
        imported_accounts = imported_endpoints = 0
        for account in accounts:
            row = conn.execute(
                "INSERT INTO accounts (id, name, created_at) VALUES (%s, %s, %s)"
                " ON CONFLICT DO NOTHING RETURNING id",
                (account.id, account.name, account.created_at),
            ).fetchone()
            if row is None:
                continue
            imported_accounts += 1
            for key in account.keys:
                conn.execute(
                    "INSERT INTO api_keys (prefix, account_id, sha256, created_at, revoked_at)"
                    " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    (key.prefix, account.id, key.sha256, key.created_at, key.revoked_at),
                )
        for endpoint in endpoints:
            params = endpoint_params(endpoint)
            columns = ", ".join(f'"{name}"' for name in params)
            values = ", ".join(f"%({name})s" for name in params)
            row = conn.execute(
                f"INSERT INTO endpoints ({columns}) VALUES ({values})"  # noqa: S608 (our names)
                " ON CONFLICT DO NOTHING RETURNING id",
                params,
            ).fetchone()
            imported_endpoints += row is not None
        conn.execute(
            "INSERT INTO control_plane_import (accounts, endpoints) VALUES (%s, %s)",
            (imported_accounts, imported_endpoints),
        )
    log.info("control plane imported", accounts=imported_accounts, endpoints=imported_endpoints)
    return imported_accounts, imported_endpoints


def _parsed(values: dict[str, bytes], parse: Callable[[bytes], T]) -> list[T]:
    parsed = []
    for key, value in values.items():
        try:
            parsed.append(parse(value))
        except Exception as exc:  # one unreadable record must not block the rest
            log.error("record unreadable, not imported", key=key, error=str(exc))
    return parsed


def _read(settings: Settings, name: str) -> dict[str, bytes]:
    """The latest value of every key of a compacted topic (none if the topic does not exist)."""
    topic = settings.topic(name)
    admin = AdminClient(librdkafka_config(settings))
    if topic not in admin.list_topics(timeout=METADATA_SECONDS).topics:
        return {}
    values: dict[str, bytes] = {}
    lock = threading.Lock()

    def apply(key: str, value: bytes | None) -> None:
        with lock:
            if value is None:
                values.pop(key, None)
            else:
                values[key] = value

    reader = CompactedReader(settings, topic, apply)
    reader.start()
    try:
        reader.wait_ready(READ_SECONDS)
    finally:
        reader.stop()
    return values
