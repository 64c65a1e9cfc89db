"""Accounts and API keys: stored in PostgreSQL (:mod:`pipeline.controlplane`), carried to a
compacted Kafka topic keyed by account id."""

from pipeline.accounts.model import Account, ApiKey, new_account
from pipeline.accounts.store import AccountCache, AccountIndex, AccountWriter

__all__ = ["Account", "AccountCache", "AccountIndex", "AccountWriter", "ApiKey", "new_account"]
