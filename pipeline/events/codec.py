"""Avro single-object encoding, as the Avro specification defines it.

    C3 01 | 8-byte little-endian CRC-64-AVRO fingerprint of the writer schema | Avro binary body

Readers find the writer schema by fingerprint and read into the current schema of its type.
Every way bytes can be wrong ends in a :class:`~pipeline.exceptions.DecodeError` subclass.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from fastavro import schemaless_reader, schemaless_writer
from fastavro.validation import ValidationError, validate

from pipeline.events.registry import EventSchema, SchemaRegistry
from pipeline.exceptions import CorruptPayload, InvalidEvent, MissingHeader, UnknownFingerprint

MAGIC = b"\xc3\x01"
HEADER_SIZE = len(MAGIC) + 8


@dataclass(frozen=True, slots=True, kw_only=True)
class DecodedEvent:
    event_type: str
    writer_version: int
    event: dict[str, Any]
    """The envelope (id, type, occurred_at, account_id, data) as read into the current schema."""


def encode(event: dict[str, Any], schema: EventSchema) -> bytes:
    """Validate ``event`` against ``schema`` and return its single-object encoding."""
    if event.get("type") != schema.event_type:
        raise InvalidEvent(
            f"event type {event.get('type')!r} does not match schema {schema.event_type!r}"
        )
    try:
        validate(event, schema.parsed, raise_errors=True)
    except ValidationError as exc:
        problems = "; ".join(str(e) for e in exc.errors)
        raise InvalidEvent(f"{schema.event_type} does not fit its schema: {problems}") from exc
    out = io.BytesIO()
    out.write(MAGIC)
    out.write(schema.fingerprint)
    schemaless_writer(out, schema.parsed, event)
    return out.getvalue()


def decode(payload: bytes | None, registry: SchemaRegistry) -> DecodedEvent:
    """Read a single-object encoded event; raise a typed :class:`DecodeError` naming the cause."""
    if not payload or len(payload) < HEADER_SIZE or payload[:2] != MAGIC:
        shown = (payload or b"")[:2].hex() or "nothing"
        raise MissingHeader(
            f"not an Avro single-object record: expected marker c301 and an 8-byte fingerprint, "
            f"got {shown} ({len(payload or b'')} bytes)"
        )
    writer = registry.by_fingerprint(payload[2:HEADER_SIZE])
    if writer is None:
        raise UnknownFingerprint(
            f"writer schema fingerprint {payload[2:HEADER_SIZE].hex()} is not in schemas/"
        )
    reader = registry.current(writer.event_type)
    body = io.BytesIO(payload[HEADER_SIZE:])
    try:
        record = schemaless_reader(body, writer.parsed, reader.parsed)
    except Exception as exc:  # fastavro raises EOFError, ValueError, IndexError, ... on bad bytes
        raise CorruptPayload(
            f"{writer.event_type} v{writer.version} body is truncated or corrupt: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if body.tell() != len(payload) - HEADER_SIZE:
        raise CorruptPayload(
            f"{writer.event_type} v{writer.version} body has "
            f"{len(payload) - HEADER_SIZE - body.tell()} trailing bytes"
        )
    if not isinstance(record, dict) or record.get("type") != writer.event_type:
        raise CorruptPayload(f"record's type field does not match its schema {writer.event_type}")
    return DecodedEvent(event_type=writer.event_type, writer_version=writer.version, event=record)
