"""The idempotency store: re-exported from the partner SDK (``velourcity_webhooks.idempotency``)."""

from __future__ import annotations

from velourcity_webhooks.idempotency import (
    DEFAULT_MAX_ENTRIES,
    DEFAULT_WINDOW_SECONDS,
    IdempotencyStore,
    MemoryIdempotencyStore,
)

__all__ = [
    "DEFAULT_MAX_ENTRIES",
    "DEFAULT_WINDOW_SECONDS",
    "IdempotencyStore",
    "MemoryIdempotencyStore",
]
