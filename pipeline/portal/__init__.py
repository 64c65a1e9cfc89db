"""Partner portal links: a short-lived sign-in to the dashboard for one account.

An operator (admin token) or the account's own backend (an API key) asks for a link; whoever
opens it is signed in to the dashboard for that account only, read-only or with full scope,
until it expires or is revoked. Links and what is done with them are kept in PostgreSQL
(``portal_links`` and ``audit_log``, migration 0005); the token itself only as its SHA-256.
"""

from pipeline.portal.model import (
    MAX_TTL_SECONDS,
    MIN_TTL_SECONDS,
    TOKEN_PREFIX,
    AuditEntry,
    PortalLink,
    Scope,
    hash_token,
    new_token,
)
from pipeline.portal.store import PortalLinks, PortalStore

__all__ = [
    "MAX_TTL_SECONDS",
    "MIN_TTL_SECONDS",
    "TOKEN_PREFIX",
    "AuditEntry",
    "PortalLink",
    "PortalLinks",
    "PortalStore",
    "Scope",
    "hash_token",
    "new_token",
]
