"""``/v1/accounts``: operators (with the admin token) create accounts and manage their keys.

Each key is a row of its own in PostgreSQL: keys created at once, through any API processes,
all work. Answers carry the account's version as ``ETag``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from pipeline.accounts import new_account
from pipeline.accounts.model import key_prefix
from pipeline.api.context import AdminDep, ApiDep, etag
from pipeline.api.errors import ApiError, not_found
from pipeline.api.schemas import AccountCreate, AccountCreated, KeyCreated, KeyOut
from pipeline.exceptions import InvalidAccount

router = APIRouter(prefix="/v1/accounts", tags=["accounts"], dependencies=[AdminDep])


_VERSIONED: dict[int | str, dict[str, Any]] = {
    201: {
        "headers": {
            "ETag": {
                "description": 'The account\'s version, e.g. `"2"`.',
                "schema": {"type": "string"},
            }
        }
    }
}


@router.post(
    "", status_code=201, summary="Create an account and its first API key", responses=_VERSIONED
)
async def create_account(body: AccountCreate, api: ApiDep, response: Response) -> AccountCreated:
    try:
        account, api_key = new_account(body.name)
    except InvalidAccount as exc:
        raise ApiError(422, "invalid_field", str(exc), field="name") from exc
    created = await api.backends.control.create_account(account)
    response.headers["ETag"] = etag(created.version)
    return AccountCreated.of(account, api_key)


@router.post(
    "/{account_id}/keys",
    status_code=201,
    summary="Add an API key to an account",
    responses=_VERSIONED,
)
async def create_key(account_id: str, api: ApiDep, response: Response) -> KeyCreated:
    added = await api.backends.control.add_key(account_id)
    if added is None:
        raise not_found("account", account_id)
    account, api_key = added
    response.headers["ETag"] = etag(account.version)
    key = account.account.key(key_prefix(api_key))
    assert key is not None  # just added, in the same transaction
    return KeyCreated(**KeyOut.of(key).model_dump(), api_key=api_key)


@router.delete("/{account_id}/keys/{prefix}", summary="Revoke an API key")
async def revoke_key(account_id: str, prefix: str, api: ApiDep) -> KeyOut:
    revoked = await api.backends.control.revoke_key(account_id, prefix)
    if revoked is None:
        raise not_found("key", f"{prefix} in account {account_id}")
    return KeyOut.of(revoked)
