"""``/v1/endpoints``: an account manages its own endpoints, and sees no one else's.

Every route looks endpoints up through :func:`_own`, which answers 404 for an id of another
account exactly as for an id that does not exist.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, Any, ParamSpec, TypeVar

from fastapi import APIRouter, Query, Response

from pipeline.accounts import Account
from pipeline.api.context import Api, ApiDep, CallerDep, FullScopeDep
from pipeline.api.errors import ApiError, not_found
from pipeline.api.schemas import (
    EndpointCreate,
    EndpointCreated,
    EndpointHeaders,
    EndpointOut,
    EndpointPage,
    EndpointSecret,
    EndpointUpdate,
    SecretRotated,
    SecretRotation,
)
from pipeline.endpoints import Endpoint, new_endpoint
from pipeline.endpoints.model import (
    check_description,
    check_event_types,
    check_filter,
    check_headers,
    check_url,
)
from pipeline.exceptions import InvalidInput

router = APIRouter(prefix="/v1/endpoints", tags=["endpoints"])
P = ParamSpec("P")
T = TypeVar("T")


def _own(api: Api, caller: Account, endpoint_id: str) -> Endpoint:
    endpoint = api.backends.endpoints.get(endpoint_id)
    if endpoint is None or endpoint.account_id != caller.id:
        raise not_found("endpoint", endpoint_id)
    return endpoint


def _types(event_types: list[str] | None) -> tuple[str, ...] | None:
    if event_types == []:
        message = "event_types: list at least one type, or leave it out (or null) for every type"
        raise ApiError(422, "invalid_field", message, field="event_types")
    return _checked("event_types", check_event_types, event_types)


def _checked(field: str, check: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run one of the endpoint model's checks, naming ``field`` if it refuses."""
    try:
        return check(*args, **kwargs)
    except InvalidInput as exc:
        raise ApiError(422, "invalid_field", str(exc), field=field) from exc


async def _save(api: Api, endpoint: Endpoint) -> Endpoint:
    await asyncio.to_thread(api.backends.endpoint_writer.put, endpoint)
    await api.visible(lambda: api.backends.endpoints.get(endpoint.id) == endpoint)
    return endpoint


@router.post("", status_code=201, summary="Register an endpoint")
async def create_endpoint(body: EndpointCreate, api: ApiDep, caller: CallerDep) -> EndpointCreated:
    types = _types(body.event_types)
    description = _checked("description", check_description, body.description)
    content_filter = _checked("filter", check_filter, body.filter)
    headers = _checked("headers", check_headers, body.headers)
    settings, resolver = api.config.settings, api.config.resolver
    # The other fields passed their checks; what new_endpoint refuses now is the URL (the
    # check that may resolve DNS, so it runs in a thread).
    endpoint = await asyncio.to_thread(
        _checked,
        "url",
        new_endpoint,
        settings,
        account_id=caller.id,
        url=body.url,
        event_types=types,
        description=description,
        resolver=resolver,
        rate_limit=body.rate_limit,
        ordered=body.ordered,
        filter=content_filter,
        headers=dict(headers),
    )
    return EndpointCreated.of(await _save(api, endpoint))


@router.get("", summary="List the account's endpoints, oldest first")
async def list_endpoints(
    api: ApiDep,
    caller: CallerDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=64, description="next_cursor")] = None,
) -> EndpointPage:
    mine = sorted(api.backends.endpoints.for_account(caller.id), key=lambda e: e.id)
    after = [e for e in mine if cursor is None or e.id > cursor]  # ids sort by creation time
    page = after[:limit]
    more = len(after) > limit
    return EndpointPage(
        data=[EndpointOut.of(e) for e in page], next_cursor=page[-1].id if more else None
    )


@router.get("/{endpoint_id}", summary="One endpoint")
async def get_endpoint(endpoint_id: str, api: ApiDep, caller: CallerDep) -> EndpointOut:
    return EndpointOut.of(_own(api, caller, endpoint_id))


@router.patch("/{endpoint_id}", summary="Change an endpoint's URL, event types, filter, ...")
async def update_endpoint(
    endpoint_id: str, body: EndpointUpdate, api: ApiDep, caller: CallerDep
) -> EndpointOut:
    endpoint = _own(api, caller, endpoint_id)
    changes: dict[str, Any] = {}
    for field in ("url", "description"):
        if field in body.model_fields_set and getattr(body, field) is None:
            raise ApiError(422, "invalid_field", f"{field} may not be null", field=field)
    if body.url is not None:
        settings, resolver = api.config.settings, api.config.resolver
        changes["url"] = await asyncio.to_thread(
            _checked, "url", check_url, body.url, settings, resolver
        )
    if "event_types" in body.model_fields_set:
        changes["event_types"] = _types(body.event_types)
    if body.description is not None:
        changes["description"] = _checked("description", check_description, body.description)
    if "rate_limit" in body.model_fields_set:
        changes["rate_limit"] = body.rate_limit  # null lifts the limit
    if body.ordered is not None:
        changes["ordered"] = body.ordered
    if "headers" in body.model_fields_set:
        changes["headers"] = _checked("headers", check_headers, body.headers)  # null: none
    if "filter" in body.model_fields_set:
        changes["filter"] = _checked("filter", check_filter, body.filter)  # null: none
    if not changes:
        return EndpointOut.of(endpoint)
    return EndpointOut.of(await _save(api, endpoint.replace(**changes)))


@router.delete("/{endpoint_id}", status_code=204, summary="Delete an endpoint")
async def delete_endpoint(endpoint_id: str, api: ApiDep, caller: CallerDep) -> Response:
    _own(api, caller, endpoint_id)
    await asyncio.to_thread(api.backends.endpoint_writer.delete, endpoint_id)
    await api.visible(lambda: api.backends.endpoints.get(endpoint_id) is None)
    return Response(status_code=204)


@router.post("/{endpoint_id}/disable", summary="Stop sending to an endpoint")
async def disable_endpoint(endpoint_id: str, api: ApiDep, caller: CallerDep) -> EndpointOut:
    endpoint = _own(api, caller, endpoint_id)
    new = endpoint.replace(enabled=False, disabled_reason="disabled by its owner")
    return EndpointOut.of(await _save(api, new))


@router.post("/{endpoint_id}/enable", summary="Send to an endpoint again")
async def enable_endpoint(endpoint_id: str, api: ApiDep, caller: CallerDep) -> EndpointOut:
    endpoint = _own(api, caller, endpoint_id)
    return EndpointOut.of(await _save(api, endpoint.replace(enabled=True, disabled_reason=None)))


@router.get("/{endpoint_id}/headers", summary="The endpoint's custom headers, unmasked")
async def endpoint_headers(endpoint_id: str, api: ApiDep, caller: FullScopeDep) -> EndpointHeaders:
    endpoint = _own(api, caller, endpoint_id)
    return EndpointHeaders(id=endpoint.id, headers=dict(endpoint.headers))


@router.get("/{endpoint_id}/secret", summary="The endpoint's signing secret")
async def endpoint_secret(endpoint_id: str, api: ApiDep, caller: FullScopeDep) -> EndpointSecret:
    endpoint = _own(api, caller, endpoint_id)
    return EndpointSecret(id=endpoint.id, secret=endpoint.secret)


@router.post(
    "/{endpoint_id}/rotate-secret",
    summary="Replace the signing secret; the old one keeps signing for a grace period",
)
async def rotate_secret(
    endpoint_id: str, api: ApiDep, caller: CallerDep, body: SecretRotation | None = None
) -> SecretRotated:
    """During the grace period every webhook's `webhook-signature` carries a signature per
    active secret, so partners can switch to the new one without rejecting any webhook."""
    endpoint = _own(api, caller, endpoint_id)
    grace = (body or SecretRotation()).grace_seconds
    return SecretRotated.of(await _save(api, endpoint.rotate(grace)))
