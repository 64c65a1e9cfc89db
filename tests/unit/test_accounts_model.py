"""Accounts and API keys: keys are stored only as hashes, found by prefix, revocable."""

from __future__ import annotations

import hashlib

import pytest

from pipeline.accounts import Account, AccountIndex, new_account
from pipeline.exceptions import InvalidAccount


def test_a_new_account_has_one_key_stored_only_as_its_hash() -> None:
    account, api_key = new_account("  Trattoria Roma ")
    assert account.id.startswith("acct_") and len(account.id) == 31
    assert account.name == "Trattoria Roma"
    assert api_key.startswith("vk_") and len(api_key) == 3 + 43
    (key,) = account.keys
    assert key.sha256 == hashlib.sha256(api_key.encode()).hexdigest()
    assert api_key.startswith(key.prefix) and len(key.prefix) == 11
    assert api_key not in account.to_json().decode()


def test_accounts_survive_their_json_form() -> None:
    account, _ = new_account("a")
    account, _ = account.with_new_key()
    account = account.with_key_revoked(account.keys[0].prefix)
    assert Account.from_json(account.to_json()) == account


@pytest.mark.parametrize("name", ["", "   ", "x" * 201])
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidAccount, match="1 to 200 characters"):
        new_account(name)


def test_the_index_finds_the_owner_of_an_active_key_only() -> None:
    index = AccountIndex()
    first, first_key = new_account("first")
    second, second_key = new_account("second")
    for account in (first, second):
        index.apply(account.id, account.to_json())
    assert index.authenticate(first_key) == first
    assert index.authenticate(second_key) == second
    other_last = "B" if first_key.endswith("A") else "A"  # a key that differs (1 in 64 ended in A)
    assert index.authenticate(first_key[:-1] + other_last) is None
    assert index.authenticate("vk_") is None

    revoked = first.with_key_revoked(first.keys[0].prefix)
    index.apply(first.id, revoked.to_json())
    assert index.authenticate(first_key) is None
    assert index.get(first.id) == revoked

    index.apply(second.id, None)  # a tombstone
    assert index.authenticate(second_key) is None and index.get(second.id) is None


def test_an_unreadable_record_is_skipped() -> None:
    index = AccountIndex()
    index.apply("acct_x", b"not json")
    assert index.get("acct_x") is None
