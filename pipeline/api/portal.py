"""Partner portal links (``/v1/portal-links``, ``/v1/accounts/{id}/portal-link``), the audit
log (``/v1/audit-log``) and who the caller is (``/v1/me``).

A link is a URL to the dashboard with a token in its fragment (``/#portal=vpl_...``): the
fragment never reaches a server's access log nor a ``Referer``; the dashboard moves it into the
tab's sessionStorage and out of the address bar. Links are made by an operator (admin token) or
by the account's backend (its API key), never through another portal link.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Literal

import structlog
from fastapi import APIRouter, FastAPI, Query, Request, Response
from pydantic import BaseModel, Field

from pipeline.api.context import (
    SAFE_METHODS,
    AdminDep,
    Api,
    ApiDep,
    CallerDep,
    KeyHolderDep,
    portal_link_of,
)
from pipeline.api.errors import not_found
from pipeline.api.schemas import Request as RequestBody
from pipeline.exceptions import DatabaseUnavailable
from pipeline.portal import MAX_TTL_SECONDS, MIN_TTL_SECONDS, AuditEntry, PortalLink, Scope
from pipeline.portal.model import DEFAULT_TTL_SECONDS

log = structlog.get_logger(__name__)
router = APIRouter(tags=["portal"])

MAX_PAGE = 200


def _time(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _time_or_none(ms: int | None) -> datetime | None:
    return None if ms is None else _time(ms)


class PortalLinkCreate(RequestBody):
    scope: Scope = Field(
        default="read", description="`read`: look only; `full`: also change endpoints, retry."
    )
    expires_in: int = Field(
        default=DEFAULT_TTL_SECONDS,
        ge=MIN_TTL_SECONDS,
        le=MAX_TTL_SECONDS,
        description="Seconds the link works for (15 minutes unless set).",
    )
    label: str = Field(
        default="",
        max_length=200,
        description="Who it is for (e.g. a teammate's email), for the link list and audit log.",
    )


class PortalLinkOut(BaseModel):
    id: str
    account_id: str
    scope: Scope
    label: str
    created_by: str = Field(description="`admin`, or `key:<prefix>` of the API key that made it.")
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None
    active: bool

    @classmethod
    def of(cls, link: PortalLink) -> PortalLinkOut:
        now = int(datetime.now(UTC).timestamp() * 1000)
        return cls(
            id=link.id,
            account_id=link.account_id,
            scope=link.scope,
            label=link.label,
            created_by=link.created_by,
            created_at=_time(link.created_at),
            expires_at=_time(link.expires_at),
            revoked_at=_time_or_none(link.revoked_at),
            last_used_at=_time_or_none(link.last_used_at),
            active=link.active(now),
        )


class PortalLinkCreated(PortalLinkOut):
    url: str = Field(description="Open it to be signed in to the dashboard for this account.")
    token: str = Field(description="The link's token (in the URL's fragment), shown this once.")


class PortalLinkList(BaseModel):
    data: list[PortalLinkOut]


class Revoked(BaseModel):
    revoked: int


class AuditEntryOut(BaseModel):
    id: int
    at: datetime
    actor: str = Field(description="`admin`, `key:<prefix>` or `portal:<link id>`.")
    action: str = Field(
        description="`portal_link.created`, `.opened`, `.revoked`, `.revoked_all`, or `request`"
        " (a change made through a portal link: method, path and status in `detail`)."
    )
    detail: dict[str, Any]

    @classmethod
    def of(cls, entry: AuditEntry) -> AuditEntryOut:
        return cls(
            id=entry.id,
            at=_time(entry.at),
            actor=entry.actor,
            action=entry.action,
            detail=entry.detail,
        )


class AuditPage(BaseModel):
    data: list[AuditEntryOut]
    next_before: int | None = Field(description="Pass as `before` for the next (older) page.")


class Me(BaseModel):
    account_id: str
    account_name: str
    via: Literal["api_key", "portal_link"]
    scope: Scope
    expires_at: datetime | None = Field(description="When the portal link stops working.")


def _url(api: Api, request: Request, token: str) -> str:
    base = api.config.settings.public_url
    root = str(base) if base is not None else str(request.base_url)
    return f"{root.rstrip('/')}/#portal={token}"


async def _create(
    api: Api, request: Request, account_id: str, body: PortalLinkCreate, created_by: str
) -> PortalLinkCreated:
    link, token = await api.backends.portal.create(
        account_id,
        scope=body.scope,
        ttl_seconds=body.expires_in,
        label=body.label,
        created_by=created_by,
    )
    out = PortalLinkOut.of(link).model_dump()
    return PortalLinkCreated(**out, url=_url(api, request, token), token=token)


@router.post(
    "/v1/accounts/{account_id}/portal-link",
    status_code=201,
    dependencies=[AdminDep],
    tags=["accounts"],
    summary="Make a portal link for an account (operators)",
)
async def create_account_portal_link(
    account_id: str, body: PortalLinkCreate, api: ApiDep, request: Request
) -> PortalLinkCreated:
    if await api.backends.control.account(account_id) is None:
        raise not_found("account", account_id)
    return await _create(api, request, account_id, body, "admin")


@router.post(
    "/v1/accounts/{account_id}/portal-links/revoke-all",
    dependencies=[AdminDep],
    tags=["accounts"],
    summary="Revoke every active portal link of an account (operators)",
)
async def revoke_account_portal_links(account_id: str, api: ApiDep) -> Revoked:
    if await api.backends.control.account(account_id) is None:
        raise not_found("account", account_id)
    return Revoked(revoked=await api.backends.portal.revoke_all(account_id, "admin"))


@router.post("/v1/portal-links", status_code=201, summary="Make a portal link for your own account")
async def create_portal_link(
    body: PortalLinkCreate, api: ApiDep, caller: KeyHolderDep, request: Request
) -> PortalLinkCreated:
    return await _create(api, request, caller.id, body, request.state.actor)


@router.get("/v1/portal-links", summary="Your account's portal links, newest first")
async def list_portal_links(
    api: ApiDep, caller: KeyHolderDep, limit: int = Query(default=50, ge=1, le=MAX_PAGE)
) -> PortalLinkList:
    links = await api.backends.portal.links(caller.id, limit)
    return PortalLinkList(data=[PortalLinkOut.of(link) for link in links])


@router.delete("/v1/portal-links/{link_id}", summary="Revoke a portal link at once")
async def revoke_portal_link(
    link_id: str, api: ApiDep, caller: KeyHolderDep, request: Request
) -> PortalLinkOut:
    link = await api.backends.portal.revoke(caller.id, link_id, request.state.actor)
    if link is None:
        raise not_found("portal link", link_id)
    return PortalLinkOut.of(link)


@router.post("/v1/portal-links/revoke-all", summary="Revoke every active portal link")
async def revoke_portal_links(api: ApiDep, caller: KeyHolderDep, request: Request) -> Revoked:
    return Revoked(revoked=await api.backends.portal.revoke_all(caller.id, request.state.actor))


async def _audit_page(api: Api, account_id: str, limit: int, before: int | None) -> AuditPage:
    entries = await api.backends.portal.audit(account_id, limit, before)
    next_before = entries[-1].id if len(entries) == limit else None
    return AuditPage(data=[AuditEntryOut.of(e) for e in entries], next_before=next_before)


@router.get("/v1/audit-log", summary="What was done with your account's portal links")
async def audit_log(
    api: ApiDep,
    caller: KeyHolderDep,
    limit: int = Query(default=50, ge=1, le=MAX_PAGE),
    before: int | None = Query(default=None, ge=1),
) -> AuditPage:
    return await _audit_page(api, caller.id, limit, before)


@router.get(
    "/v1/accounts/{account_id}/audit-log",
    dependencies=[AdminDep],
    tags=["accounts"],
    summary="An account's audit log (operators)",
)
async def account_audit_log(
    account_id: str,
    api: ApiDep,
    limit: int = Query(default=50, ge=1, le=MAX_PAGE),
    before: int | None = Query(default=None, ge=1),
) -> AuditPage:
    if await api.backends.control.account(account_id) is None:
        raise not_found("account", account_id)
    return await _audit_page(api, account_id, limit, before)


@router.get("/v1/me", summary="Who is calling: the account, and how (API key or portal link)")
async def me(caller: CallerDep, request: Request) -> Me:
    link = portal_link_of(request)
    if link is None:
        return Me(
            account_id=caller.id,
            account_name=caller.name,
            via="api_key",
            scope="full",
            expires_at=None,
        )
    return Me(
        account_id=caller.id,
        account_name=caller.name,
        via="portal_link",
        scope=link.scope,
        expires_at=_time(link.expires_at),
    )


def install_audit(app: FastAPI) -> None:
    """Record in the audit log every change made through a portal link, with its status.

    Reads are not recorded one by one (a dashboard polls every few seconds); the link's
    ``last_used_at`` and its ``portal_link.opened`` entry tell when it was used.
    """

    @app.middleware("http")
    async def audit_portal_writes(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        link = portal_link_of(request)
        if link is not None and request.method not in SAFE_METHODS:
            detail = {
                "method": request.method,
                "path": request.url.path,
                "status": response.status_code,
            }
            try:
                await request.app.state.backends.portal.record(
                    link.account_id, link.actor, "request", detail
                )
            except DatabaseUnavailable as exc:  # the change is made: say so, don't hide it
                log.error("audit entry not recorded", error=str(exc), link_id=link.id, **detail)
        return response
