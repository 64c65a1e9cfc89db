"""``/v1/accounts``: operators (with the admin token) create accounts and manage their keys."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from pipeline.accounts import Account, new_account
from pipeline.api.context import AdminDep, Api, ApiDep
from pipeline.api.errors import ApiError, not_found
from pipeline.api.schemas import AccountCreate, AccountCreated, KeyCreated, KeyOut
from pipeline.exceptions import InvalidAccount

router = APIRouter(prefix="/v1/accounts", tags=["accounts"], dependencies=[AdminDep])


async def _save(api: Api, account: Account) -> None:
    await asyncio.to_thread(api.backends.account_writer.put, account)
    await api.visible(lambda: api.backends.accounts.get(account.id) == account)


def _existing(api: Api, account_id: str) -> Account:
    account = api.backends.accounts.get(account_id)
    if account is None:
        raise not_found("account", account_id)
    return account


@router.post("", status_code=201, summary="Create an account and its first API key")
async def create_account(body: AccountCreate, api: ApiDep) -> AccountCreated:
    try:
        account, api_key = new_account(body.name)
    except InvalidAccount as exc:
        raise ApiError(422, "invalid_field", str(exc), field="name") from exc
    await _save(api, account)
    return AccountCreated.of(account, api_key)


@router.post("/{account_id}/keys", status_code=201, summary="Add an API key to an account")
async def create_key(account_id: str, api: ApiDep) -> KeyCreated:
    async with api.account_lock:
        account, api_key = _existing(api, account_id).with_new_key()
        await _save(api, account)
    key = account.keys[-1]
    return KeyCreated(**KeyOut.of(key).model_dump(), api_key=api_key)


@router.delete("/{account_id}/keys/{prefix}", summary="Revoke an API key")
async def revoke_key(account_id: str, prefix: str, api: ApiDep) -> KeyOut:
    async with api.account_lock:
        account = _existing(api, account_id)
        if account.key(prefix) is None:
            raise not_found("key", f"{prefix} in account {account_id}")
        account = account.with_key_revoked(prefix)
        await _save(api, account)
    revoked = account.key(prefix)
    assert revoked is not None
    return KeyOut.of(revoked)
