"""Accounts and API keys: a compacted Kafka topic keyed by account id is the record."""

from pipeline.accounts.model import Account, ApiKey, new_account
from pipeline.accounts.store import AccountCache, AccountIndex, AccountWriter

__all__ = ["Account", "AccountCache", "AccountIndex", "AccountWriter", "ApiKey", "new_account"]
