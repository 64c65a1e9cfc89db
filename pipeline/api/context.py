"""What every route needs (settings, backends, the caller) as FastAPI dependencies."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from pipeline.accounts import Account
from pipeline.accounts.model import KEY_PREFIX, key_prefix
from pipeline.api.backends import Backends
from pipeline.api.errors import ApiError
from pipeline.delivery.ssrf import SyncResolver
from pipeline.portal import TOKEN_PREFIX, PortalLink
from pipeline.settings import Settings


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiConfig:
    settings: Settings
    resolver: SyncResolver | None = None
    """Registration-time DNS for endpoint URLs (default: the system's)."""


@dataclass(frozen=True, slots=True)
class Api:
    """One request's view of the API: its configuration and backends."""

    config: ApiConfig
    backends: Backends


def _api(request: Request) -> Api:
    backends = getattr(request.app.state, "backends", None)
    if backends is None:
        raise ApiError(503, "starting", "the API is still loading its data; try again shortly")
    return Api(request.app.state.config, backends)


ApiDep = Annotated[Api, Depends(_api)]

_admin_scheme = HTTPBearer(
    auto_error=False, scheme_name="AdminToken", description="VELOURCITY_ADMIN_TOKEN"
)
_key_scheme = HTTPBearer(auto_error=False, scheme_name="ApiKey", description="An API key, vk_...")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers=_CHALLENGE)


def _sha256(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def _admin(
    api: ApiDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_admin_scheme)]
) -> None:
    token = api.config.settings.admin_token
    if token is None:
        message = "account administration is off: set VELOURCITY_ADMIN_TOKEN to turn it on"
        raise ApiError(503, "admin_disabled", message)
    if credentials is None:
        raise _unauthorized("send the admin token as 'Authorization: Bearer <token>'")
    if not hmac.compare_digest(_sha256(credentials.credentials), _sha256(token.get_secret_value())):
        raise _unauthorized("the admin token is wrong")


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def _account(
    request: Request,
    api: ApiDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_key_scheme)],
) -> Account:
    """The calling account, from an API key or a portal link's token.

    A portal link's caller is kept on ``request.state.portal_link`` (for the scope checks below
    and the audit log); a read-only link may only read.
    """
    if credentials is None:
        raise _unauthorized(f"send an API key as 'Authorization: Bearer {KEY_PREFIX}...'")
    token = credentials.credentials
    if not token.startswith(TOKEN_PREFIX):
        account = await api.backends.control.authenticate(token)
        if account is None:
            raise _unauthorized("the API key is wrong or revoked")
        request.state.actor = f"key:{key_prefix(token)}"
        return account
    link = await api.backends.portal.authenticate(token)
    found = None if link is None else await api.backends.control.account(link.account_id)
    if link is None or found is None:
        raise _unauthorized("the portal link has expired or was revoked: ask for a new one")
    request.state.portal_link = link
    request.state.actor = link.actor
    if link.scope == "read" and request.method not in SAFE_METHODS:
        raise _forbidden("read_only", "this portal link is read-only: it cannot change anything")
    return found.account


def _forbidden(code: str, message: str) -> ApiError:
    return ApiError(403, code, message)


def portal_link_of(request: Request) -> PortalLink | None:
    """The portal link this request came with (None: an API key or the admin token)."""
    link: PortalLink | None = getattr(request.state, "portal_link", None)
    return link


def _key_holder(request: Request, account: Annotated[Account, Depends(_account)]) -> Account:
    if portal_link_of(request) is not None:
        message = "a portal link cannot do this: it needs the account's API key"
        raise _forbidden("api_key_required", message)
    return account


def _full_scope(request: Request, account: Annotated[Account, Depends(_account)]) -> Account:
    link = portal_link_of(request)
    if link is not None and link.scope != "full":
        raise _forbidden("read_only", "a read-only portal link cannot reveal secrets")
    return account


AdminDep = Depends(_admin)
CallerDep = Annotated[Account, Depends(_account)]
"""An API key or a portal link (a read-only one on reads only)."""
KeyHolderDep = Annotated[Account, Depends(_key_holder)]
"""An API key only: what a portal link must never do (portal links, the audit log)."""
FullScopeDep = Annotated[Account, Depends(_full_scope)]
"""An API key or a full-scope portal link: revealing an endpoint's secret or headers."""


def etag(version: int) -> str:
    """A resource's ETag: its version, quoted (a strong validator)."""
    return f'"{version}"'


def _if_match(
    if_match: Annotated[
        str | None,
        Header(
            description='The ETag of your last read (`"3"`): the write applies only if the'
            " resource is still at that version, else 412 precondition_failed. Without it,"
            " only the fields sent change (whatever the version).",
        ),
    ] = None,
) -> int | None:
    if if_match is None or if_match.strip() == "*":
        return None
    text = if_match.strip().removeprefix("W/").strip('"')
    if not text.isdigit():
        raise ApiError(400, "bad_request", 'If-Match takes an ETag as answered, e.g. "3"')
    return int(text)


IfMatchDep = Annotated[int | None, Depends(_if_match)]
"""The version an ``If-Match`` header names (None: no condition)."""


def _required_if_match(
    if_match: Annotated[
        str | None,
        Header(
            description='Required: the ETag of your last read (`"3"`), so a replace never'
            " overwrites a change you have not seen (412 precondition_failed if it is no longer"
            " current); `*` replaces whatever version is there. Without it: 428.",
        ),
    ] = None,
) -> int | None:
    if if_match is None:
        message = (
            'a replace needs If-Match: the ETag of your last read (e.g. "3"), or * for any'
            " version; PATCH changes single fields without it"
        )
        raise ApiError(428, "precondition_required", message)
    return _if_match(if_match)


RequiredIfMatchDep = Annotated[int | None, Depends(_required_if_match)]
"""For whole-resource writes (PUT): the version ``If-Match`` names, None for ``*``; 428 when
the header is missing (RFC 6585: it prevents the lost update a blind replace would cause)."""
