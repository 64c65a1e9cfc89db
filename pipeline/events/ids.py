"""Time-ordered ids: a ULID (48-bit millisecond time + 80 random bits, Crockford base32)."""

from __future__ import annotations

import secrets
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def ulid(now_ms: int | None = None) -> str:
    """A 26-character ULID; ids made later sort after ids made earlier (to the millisecond)."""
    ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    value = (ms << 80) | secrets.randbits(80)
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def new_event_id() -> str:
    return f"evt_{ulid()}"
