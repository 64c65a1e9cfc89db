"""A portal link, its token and the audit log's entries."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any, Literal

TOKEN_PREFIX = "vpl_"  # noqa: S105 (a prefix, not a secret)
"""Portal tokens start with this (API keys with ``vk_``): the API tells them apart at once."""
DEFAULT_TTL_SECONDS = 15 * 60
MIN_TTL_SECONDS = 60
MAX_TTL_SECONDS = 7 * 24 * 3600  # Svix's longest portal session

Scope = Literal["read", "full"]
"""``read``: look at endpoints, deliveries and stats; ``full``: also change endpoints, retry,
recover and send test events. Neither can see API keys nor make or revoke portal links."""


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def new_link_id() -> str:
    return "pl_" + secrets.token_hex(8)


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True, slots=True, kw_only=True)
class PortalLink:
    id: str
    account_id: str
    scope: Scope
    label: str
    created_by: str
    created_at: int
    """Unix milliseconds, like every time the API shows."""
    expires_at: int
    revoked_at: int | None = None
    last_used_at: int | None = None

    def active(self, now_ms: int) -> bool:
        return self.revoked_at is None and now_ms < self.expires_at

    @property
    def actor(self) -> str:
        """How the audit log names what was done through this link."""
        return f"portal:{self.id}"


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEntry:
    id: int
    account_id: str
    at: int
    actor: str
    action: str
    detail: dict[str, Any]
