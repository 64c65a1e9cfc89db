"""``/v1/endpoints``: an account manages its own endpoints, and sees no one else's.

Every route looks endpoints up through :func:`_own`, which answers 404 for an id of another
account exactly as for an id that does not exist. Endpoints live in PostgreSQL: an answer shows
what was committed, and carries the endpoint's version as ``ETag``. A PATCH changes only the
fields it sends (two PATCHes of different fields at once both stay); with ``If-Match`` it, or a
DELETE, applies only to that version (else 412). A PUT replaces the whole configuration and
requires ``If-Match`` (428 without; ``*``: any version). A create whose id exists is 409.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, Any, ParamSpec, TypeVar

from fastapi import APIRouter, Query, Response

from pipeline.accounts import Account
from pipeline.api.context import (
    Api,
    ApiDep,
    CallerDep,
    FullScopeDep,
    IfMatchDep,
    RequiredIfMatchDep,
    etag,
)
from pipeline.api.errors import ApiError, ErrorBody, not_found
from pipeline.api.schemas import (
    EndpointCreate,
    EndpointCreated,
    EndpointHeaders,
    EndpointOut,
    EndpointPage,
    EndpointReplace,
    EndpointSecret,
    EndpointUpdate,
    SecretRotated,
    SecretRotation,
)
from pipeline.controlplane import VersionedEndpoint
from pipeline.endpoints import Endpoint, new_endpoint
from pipeline.endpoints.model import (
    check_description,
    check_event_types,
    check_filter,
    check_headers,
    check_url,
)
from pipeline.exceptions import InvalidInput, StaleVersion

router = APIRouter(prefix="/v1/endpoints", tags=["endpoints"])
P = ParamSpec("P")
T = TypeVar("T")


Responses = dict[int | str, dict[str, Any]]
_ETAG: dict[str, Any] = {
    "ETag": {
        "description": 'The endpoint\'s version, e.g. `"3"`: send it as If-Match.',
        "schema": {"type": "string"},
    }
}
_PRECONDITION: Responses = {
    412: {"model": ErrorBody, "description": "If-Match names a version that is not current"}
}
_VERSIONED: Responses = {200: {"headers": _ETAG}}
_REQUIRED: Responses = {
    428: {"model": ErrorBody, "description": "If-Match is missing: a replace must name a version"}
}
_CREATED: Responses = {201: {"headers": _ETAG}}
_CONFLICT: Responses = {
    409: {"model": ErrorBody, "description": "An endpoint with this id exists already"}
}


async def _own_versioned(api: Api, caller: Account, endpoint_id: str) -> VersionedEndpoint:
    found = await api.backends.control.endpoint(endpoint_id)
    if found is None or found.endpoint.account_id != caller.id:
        raise not_found("endpoint", endpoint_id)
    return found


async def _own(api: Api, caller: Account, endpoint_id: str) -> Endpoint:
    return (await _own_versioned(api, caller, endpoint_id)).endpoint


def _tagged(response: Response, found: VersionedEndpoint | None, endpoint_id: str) -> Endpoint:
    """The endpoint written (its ETag on the response), or 404 (deleted meanwhile, or not the
    caller's: the store matched no row)."""
    if found is None:
        raise not_found("endpoint", endpoint_id)
    response.headers["ETag"] = etag(found.version)
    return found.endpoint


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


async def _change(
    api: Api,
    caller: Account,
    response: Response,
    endpoint_id: str,
    changes: dict[str, Any],
    if_version: int | None = None,
) -> Endpoint:
    found = await api.backends.control.update_endpoint(
        endpoint_id, caller.id, changes, if_version=if_version
    )
    return _tagged(response, found, endpoint_id)


@router.post(
    "",
    status_code=201,
    summary="Register an endpoint",
    responses=_CREATED | _CONFLICT,
)
async def create_endpoint(
    body: EndpointCreate, api: ApiDep, caller: CallerDep, response: Response
) -> EndpointCreated:
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
    created = await api.backends.control.create_endpoint(endpoint)
    return EndpointCreated.of(_tagged(response, created, endpoint.id))


@router.get("", summary="List the account's endpoints, oldest first")
async def list_endpoints(
    api: ApiDep,
    caller: CallerDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=64, description="next_cursor")] = None,
) -> EndpointPage:
    # Ids sort by creation time; one more than the page tells whether there is a next.
    found = await api.backends.control.endpoints_of(caller.id, after=cursor, limit=limit + 1)
    page = [f.endpoint for f in found[:limit]]
    more = len(found) > limit
    return EndpointPage(
        data=[EndpointOut.of(e) for e in page], next_cursor=page[-1].id if more else None
    )


@router.get("/{endpoint_id}", summary="One endpoint", responses=_VERSIONED)
async def get_endpoint(
    endpoint_id: str, api: ApiDep, caller: CallerDep, response: Response
) -> EndpointOut:
    found = await _own_versioned(api, caller, endpoint_id)
    return EndpointOut.of(_tagged(response, found, endpoint_id))


@router.patch(
    "/{endpoint_id}",
    summary="Change an endpoint's URL, event types, filter, ...",
    responses=_VERSIONED | _PRECONDITION,
)
async def update_endpoint(
    endpoint_id: str,
    body: EndpointUpdate,
    api: ApiDep,
    caller: CallerDep,
    response: Response,
    if_version: IfMatchDep,
) -> EndpointOut:
    """Only the fields sent change: two clients changing different fields at once both keep
    theirs. Send `If-Match` with the ETag of your read to change nothing unless the endpoint is
    still as you read it (412 otherwise)."""
    current = await _own_versioned(api, caller, endpoint_id)
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
        if if_version is not None and if_version != current.version:
            raise StaleVersion(f"endpoint {endpoint_id}", current=current.version)
        return EndpointOut.of(_tagged(response, current, endpoint_id))
    return EndpointOut.of(await _change(api, caller, response, endpoint_id, changes, if_version))


@router.put(
    "/{endpoint_id}",
    summary="Replace an endpoint's configuration (If-Match required)",
    responses=_VERSIONED | _PRECONDITION | _REQUIRED,
)
async def replace_endpoint(
    endpoint_id: str,
    body: EndpointReplace,
    api: ApiDep,
    caller: CallerDep,
    response: Response,
    if_version: RequiredIfMatchDep,
) -> EndpointOut:
    """Every configuration field is set from the body (those left out to their defaults, as on
    create). `If-Match` is required: the ETag of your read (412 if the endpoint changed since),
    or `*` for whatever version is there; without it 428, since a blind replace would undo a
    change made meanwhile (send PATCH to change single fields). The secret (rotate-secret) and
    the state (disable, enable) are kept."""
    current = await _own_versioned(api, caller, endpoint_id)
    url = body.url
    if not current.endpoint.listen:  # a listen endpoint's URL is only shown, never dialled
        settings, resolver = api.config.settings, api.config.resolver
        url = await asyncio.to_thread(_checked, "url", check_url, url, settings, resolver)
    changes: dict[str, Any] = {
        "url": url,
        "event_types": _types(body.event_types),
        "description": _checked("description", check_description, body.description),
        "rate_limit": body.rate_limit,
        "ordered": body.ordered,
        "filter": _checked("filter", check_filter, body.filter),
        "headers": _checked("headers", check_headers, body.headers),
    }
    return EndpointOut.of(await _change(api, caller, response, endpoint_id, changes, if_version))


@router.delete(
    "/{endpoint_id}", status_code=204, summary="Delete an endpoint", responses=_PRECONDITION
)
async def delete_endpoint(
    endpoint_id: str, api: ApiDep, caller: CallerDep, if_version: IfMatchDep
) -> Response:
    """With `If-Match`, only if the endpoint is still at that version (412 otherwise)."""
    if not await api.backends.control.delete_endpoint(
        endpoint_id, caller.id, if_version=if_version
    ):
        raise not_found("endpoint", endpoint_id)
    return Response(status_code=204)


@router.post("/{endpoint_id}/disable", summary="Stop sending to an endpoint", responses=_VERSIONED)
async def disable_endpoint(
    endpoint_id: str, api: ApiDep, caller: CallerDep, response: Response
) -> EndpointOut:
    changes = {"enabled": False, "disabled_reason": "disabled by its owner"}
    return EndpointOut.of(await _change(api, caller, response, endpoint_id, changes))


@router.post("/{endpoint_id}/enable", summary="Send to an endpoint again", responses=_VERSIONED)
async def enable_endpoint(
    endpoint_id: str, api: ApiDep, caller: CallerDep, response: Response
) -> EndpointOut:
    changes = {"enabled": True, "disabled_reason": None}
    return EndpointOut.of(await _change(api, caller, response, endpoint_id, changes))


@router.get("/{endpoint_id}/headers", summary="The endpoint's custom headers, unmasked")
async def endpoint_headers(endpoint_id: str, api: ApiDep, caller: FullScopeDep) -> EndpointHeaders:
    endpoint = await _own(api, caller, endpoint_id)
    return EndpointHeaders(id=endpoint.id, headers=dict(endpoint.headers))


@router.get("/{endpoint_id}/secret", summary="The endpoint's signing secret")
async def endpoint_secret(endpoint_id: str, api: ApiDep, caller: FullScopeDep) -> EndpointSecret:
    endpoint = await _own(api, caller, endpoint_id)
    return EndpointSecret(id=endpoint.id, secret=endpoint.secret)


@router.post(
    "/{endpoint_id}/rotate-secret",
    summary="Replace the signing secret; the old one keeps signing for a grace period",
    responses=_VERSIONED,
)
async def rotate_secret(
    endpoint_id: str,
    api: ApiDep,
    caller: CallerDep,
    response: Response,
    body: SecretRotation | None = None,
) -> SecretRotated:
    """During the grace period every webhook's `webhook-signature` carries a signature per
    active secret, so partners can switch to the new one without rejecting any webhook."""
    grace = (body or SecretRotation()).grace_seconds
    rotated = await api.backends.control.rotate_secret(endpoint_id, caller.id, grace)
    return SecretRotated.of(_tagged(response, rotated, endpoint_id))
