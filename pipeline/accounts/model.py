"""Accounts and their API keys, and their JSON form on the accounts topic.

An API key is shown to its owner once. We keep only its SHA-256 (enough to check a key,
useless to anyone who reads the topic) and a short prefix, so people and the API can tell keys
apart and revoke one without holding it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

import orjson

from pipeline.events.ids import ulid
from pipeline.exceptions import InvalidAccount

KEY_PREFIX = "vk_"
PREFIX_CHARS = 8
"""Random characters of a key kept for display: ``vk_`` + 8 = the key's ``prefix``."""
MAX_NAME = 200


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def key_prefix(api_key: str) -> str:
    return api_key[: len(KEY_PREFIX) + PREFIX_CHARS]


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiKey:
    prefix: str
    sha256: str
    """Hex SHA-256 of the whole key; the key itself is never stored."""
    created_at: int
    """Unix milliseconds."""
    revoked_at: int | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def matches(self, api_key: str) -> bool:
        """Constant-time check (the hashes are compared, never the keys)."""
        return self.active and hmac.compare_digest(hash_key(api_key), self.sha256)


@dataclass(frozen=True, slots=True, kw_only=True)
class Account:
    id: str
    name: str
    created_at: int
    keys: tuple[ApiKey, ...] = ()

    def key(self, prefix: str) -> ApiKey | None:
        return next((k for k in self.keys if k.prefix == prefix), None)

    def with_new_key(self) -> tuple[Account, str]:
        """This account with one more key, and that key in clear (to show once)."""
        while True:
            plain = KEY_PREFIX + secrets.token_urlsafe(32)
            if self.key(key_prefix(plain)) is None:  # prefixes name keys: keep them unique
                break
        new = ApiKey(prefix=key_prefix(plain), sha256=hash_key(plain), created_at=_now_ms())
        return dataclasses.replace(self, keys=(*self.keys, new)), plain

    def with_key_revoked(self, prefix: str) -> Account:
        """This account with the key ``prefix`` revoked (revoking twice changes nothing)."""
        now = _now_ms()
        keys = tuple(
            dataclasses.replace(k, revoked_at=now) if k.prefix == prefix and k.active else k
            for k in self.keys
        )
        return dataclasses.replace(self, keys=keys)

    def to_json(self) -> bytes:
        return orjson.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, raw: bytes) -> Account:
        fields: dict[str, Any] = orjson.loads(raw)
        fields["keys"] = tuple(ApiKey(**k) for k in fields.get("keys", ()))
        return cls(**fields)


def check_name(name: str) -> str:
    cleaned = name.strip()
    if not 1 <= len(cleaned) <= MAX_NAME:
        raise InvalidAccount(f"an account name holds 1 to {MAX_NAME} characters (not only spaces)")
    return cleaned


def new_account(name: str) -> tuple[Account, str]:
    """A new account with one API key; returns it and the key in clear (to show once)."""
    account = Account(id=f"acct_{ulid()}", name=check_name(name), created_at=_now_ms())
    return account.with_new_key()
