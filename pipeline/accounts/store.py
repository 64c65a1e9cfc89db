"""Reading and writing the accounts topic (compacted, keyed by account id).

The accounts live in PostgreSQL (:mod:`pipeline.controlplane`); the outbox relay carries each
committed version to this topic. :class:`AccountWriter` writes it directly (tests, and the
records the one-time import reads); :class:`AccountCache` follows it in memory (the key's
prefix finds the candidates, their hashes are compared in constant time).
"""

from __future__ import annotations

import structlog

from pipeline.accounts.model import Account, key_prefix
from pipeline.compacted import CompactedReader, CompactedWriter
from pipeline.settings import Settings
from pipeline.topics import ACCOUNTS

log = structlog.get_logger(__name__)


class AccountWriter:
    """Writes account versions, waiting for the broker's ack."""

    def __init__(self, settings: Settings) -> None:
        self._writer = CompactedWriter(settings, settings.topic(ACCOUNTS))

    def put(self, account: Account) -> Account:
        self._writer.write(account.id, account.to_json())
        return account


class AccountIndex:
    """Accounts by id and by key prefix. One writer thread; readers on any thread see whole
    values only (entries are replaced, never changed in place)."""

    def __init__(self) -> None:
        self._by_id: dict[str, Account] = {}
        self._by_prefix: dict[str, tuple[str, ...]] = {}  # key prefix -> account ids

    def get(self, account_id: str) -> Account | None:
        return self._by_id.get(account_id)

    def authenticate(self, api_key: str) -> Account | None:
        """The account owning this active key, or ``None``."""
        for account_id in self._by_prefix.get(key_prefix(api_key), ()):
            account = self._by_id.get(account_id)
            if account is not None and any(k.matches(api_key) for k in account.keys):
                return account
        return None

    def apply(self, account_id: str, value: bytes | None) -> None:
        try:
            new = Account.from_json(value) if value is not None else None
        except Exception as exc:  # a bad record must not stop the cache
            log.error("account record unreadable, skipped", account_id=account_id, error=str(exc))
            return
        old = self._by_id.get(account_id)
        if new is None:
            self._by_id.pop(account_id, None)
        else:
            self._by_id[account_id] = new
        old_prefixes = {k.prefix for k in old.keys} if old else set()
        new_prefixes = {k.prefix for k in new.keys} if new else set()
        for prefix in old_prefixes | new_prefixes:
            others = tuple(a for a in self._by_prefix.get(prefix, ()) if a != account_id)
            owners = (*others, account_id) if prefix in new_prefixes else others
            if owners:
                self._by_prefix[prefix] = owners
            else:
                self._by_prefix.pop(prefix, None)


class AccountCache(AccountIndex):
    """An :class:`AccountIndex` kept current from the accounts topic by a background thread."""

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self._reader = CompactedReader(settings, settings.topic(ACCOUNTS), self.apply)

    def start(self) -> AccountCache:
        self._reader.start()
        return self

    def stop(self) -> None:
        self._reader.stop()

    def wait_ready(self, timeout: float = 60.0) -> None:
        self._reader.wait_ready(timeout)

    async def wait_ready_async(self, seconds: float = 60.0) -> None:
        await self._reader.wait_ready_async(seconds)
