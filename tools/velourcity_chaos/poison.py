"""Malformed records for the domain topics, each of a known kind, and the quarantine reason the
fan-out must give it."""

from __future__ import annotations

import io
import random
from collections.abc import Iterator
from typing import Any

from fastavro import schemaless_writer

from pipeline.events.codec import MAGIC, encode
from pipeline.events.registry import default_registry

KINDS = ("random_bytes", "truncated_avro", "unknown_fingerprint", "unknown_event_type", "huge")
"""What each poison record is; ``huge`` is one 5 MB record (once per run)."""

EXPECTED_REASON = {
    "random_bytes": "missing_header",
    "truncated_avro": "corrupt_payload",
    "unknown_fingerprint": "unknown_fingerprint",
    "unknown_event_type": "corrupt_payload",
    "huge": "missing_header",
}
HUGE_BYTES = 5 * 1024 * 1024


def poison(kind: str, valid: dict[str, Any], rng: random.Random) -> bytes:
    """One malformed record of ``kind``; ``valid`` is a valid event to damage."""
    schema = default_registry().current(valid["type"])
    if kind == "random_bytes":
        value = rng.randbytes(rng.randint(0, 400))
        return b"\x00" + value if value[:2] == MAGIC else value
    if kind == "truncated_avro":
        whole = encode(valid, schema)
        return whole[: rng.randint(len(MAGIC) + 9, len(whole) - 1)]
    if kind == "unknown_fingerprint":
        known = {s.fingerprint for s in default_registry().all()}
        fingerprint = rng.randbytes(8)
        while fingerprint in known:
            fingerprint = rng.randbytes(8)
        return MAGIC + fingerprint + encode(valid, schema)[len(MAGIC) + 8 :]
    if kind == "unknown_event_type":  # well-formed Avro of a known schema, a type nobody knows
        out = io.BytesIO()
        out.write(MAGIC)
        out.write(schema.fingerprint)
        schemaless_writer(out, schema.parsed, valid | {"type": "order.teleported"})
        return out.getvalue()
    if kind == "huge":
        return b"\x00" * 16 + rng.randbytes(HUGE_BYTES - 16)
    raise ValueError(f"unknown poison kind {kind!r}; known: {', '.join(KINDS)}")


def poison_plan(count: int, rng: random.Random) -> Iterator[str]:
    """``count`` kinds: one ``huge`` record, the rest evenly from the others."""
    small = [k for k in KINDS if k != "huge"]
    for n in range(count):
        yield "huge" if n == count // 2 else small[n % len(small)]
