"""Delivery logs and the ways to send again: ``/v1/deliveries``, recover, test events, dead
letters and per-minute stats. Everything is scoped to the caller's account: another account's
delivery or endpoint answers 404 exactly like one that does not exist.

Reads come from the delivery log (PostgreSQL, sunk from the deliveries and attempts topics;
503 ``database_unavailable`` while it cannot be reached);
"send again" writes delivery records to the deliveries topic at attempt 1 of a fresh schedule,
with the same delivery id and ``webhook-id``, so receivers that dedupe see one webhook.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from pipeline.accounts import Account
from pipeline.api.backends import DeliveryLogReader
from pipeline.api.context import Api, ApiDep, CallerDep
from pipeline.api.endpoints import _own
from pipeline.api.errors import ApiError, not_found
from pipeline.api.schemas import Request, _time
from pipeline.delivery.record import Attempt, Delivery, delivery_id_for
from pipeline.deliverylog import DeliveryView, Status
from pipeline.events import EVENT_TYPES
from pipeline.events.body import render_body
from pipeline.events.samples import sample_event
from pipeline.exceptions import InvalidInput
from pipeline.times import parse_time

router = APIRouter(tags=["deliveries"])

# Bodies -------------------------------------------------------------------------------------


class AttemptOut(BaseModel):
    attempt: int
    at: datetime
    status: int | None = Field(description="HTTP status; null when no response came")
    error: str | None
    latency_ms: float
    response_excerpt: str
    outcome: str
    next_attempt_at: datetime | None

    @classmethod
    def of(cls, a: Attempt) -> AttemptOut:
        return cls(
            attempt=a.attempt,
            at=_time(a.at),
            status=a.status,
            error=a.error,
            latency_ms=a.latency_ms,
            response_excerpt=a.response_excerpt,
            outcome=a.outcome,
            next_attempt_at=None if a.next_attempt_at is None else _time(a.next_attempt_at),
        )


class DeliveryOut(BaseModel):
    id: str
    event_id: str = Field(description="Also the webhook-id header: the same on every attempt")
    event_type: str
    endpoint_id: str
    status: Status
    created_at: datetime
    updated_at: datetime
    next_attempt_at: datetime | None
    attempts: int
    last_status: int | None

    @classmethod
    def of(cls, v: DeliveryView) -> DeliveryOut:
        last = v.last_attempt
        return cls(
            id=v.delivery_id,
            event_id=v.event_id,
            event_type=v.event_type,
            endpoint_id=v.endpoint_id,
            status=v.status,
            created_at=_time(v.created_at),
            updated_at=_time(v.updated_at),
            next_attempt_at=None if v.next_attempt_at is None else _time(v.next_attempt_at),
            attempts=v.attempt_count,
            last_status=last.status if last else None,
        )


class DeliveryDetail(DeliveryOut):
    attempts_log: list[AttemptOut]
    body: str | None = Field(description="The exact JSON body sent")

    @classmethod
    def of(cls, v: DeliveryView) -> DeliveryDetail:
        return cls(
            **DeliveryOut.of(v).model_dump(),
            attempts_log=[AttemptOut.of(a) for a in v.attempts],
            body=v.body,
        )


class DeliveryPage(BaseModel):
    data: list[DeliveryOut]
    next_cursor: str | None


class Queued(BaseModel):
    id: str
    status: Literal["queued"] = "queued"


class Recover(Request):
    since: str = Field(examples=["-2h", "2026-11-28T10:00:00Z"])


class Count(BaseModel):
    queued: int


class TestEvent(Request):
    event_type: str = Field(default="order.created", examples=list(EVENT_TYPES))


class TestSent(BaseModel):
    delivery_id: str
    event_id: str


class DeadLetterOut(BaseModel):
    delivery_id: str
    event_id: str
    event_type: str
    endpoint_id: str
    dead_lettered_at: datetime = Field(description="When its last attempt was made")
    reason: str | None = Field(description="How it ended, from its last attempt")
    attempts: int

    @classmethod
    def of(cls, v: DeliveryView) -> DeadLetterOut:
        last = v.last_attempt
        return cls(
            delivery_id=v.delivery_id,
            event_id=v.event_id,
            event_type=v.event_type,
            endpoint_id=v.endpoint_id,
            dead_lettered_at=_time(v.updated_at),
            reason=_ending(last) if last is not None else None,
            attempts=v.attempt_count,
        )


def _ending(last: Attempt) -> str:
    """``dead_lettered after HTTP 503``, ``endpoint_disabled after timeout``, ..."""
    what = f"HTTP {last.status}" if last.status is not None else (last.error or "no response")
    return f"{last.outcome} after {what}"


class DeadLetterPage(BaseModel):
    data: list[DeadLetterOut]
    next_cursor: str | None


class Redrive(Request):
    endpoint_id: str | None = None
    since: str | None = Field(default=None, examples=["-1d"])


class Health(BaseModel):
    endpoint_id: str
    breaker: Literal["closed", "open", "half_open"] = Field(
        description="The circuit breaker as the worker sending to it last reported"
    )
    consecutive_failures: int
    since: datetime | None = Field(description="When the breaker entered this state")


class Minute(BaseModel):
    """Attempts in one minute, by outcome."""

    minute: datetime
    delivered: int = 0
    retry: int = 0
    dead_lettered: int = 0
    endpoint_disabled: int = 0
    endpoint_deleted: int = 0


class Stats(BaseModel):
    minutes: list[Minute]


# Helpers ------------------------------------------------------------------------------------


def _log(api: Api) -> DeliveryLogReader:
    return api.backends.delivery_log


def _ms(field: str, text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return parse_time(text)
    except InvalidInput as exc:
        raise ApiError(422, "invalid_field", str(exc), field=field) from exc


async def _send(api: Api, deliveries: list[Delivery]) -> int:
    if not deliveries:
        return 0
    return await asyncio.to_thread(api.backends.delivery_sender.send, deliveries)


# Routes -------------------------------------------------------------------------------------


@router.get("/v1/deliveries", summary="List deliveries, newest first")
async def list_deliveries(
    api: ApiDep,
    caller: CallerDep,
    endpoint_id: str | None = None,
    event_type: str | None = None,
    status: Status | None = None,
    since: Annotated[str | None, Query(description="ISO-8601 or relative (-2h)")] = None,
    until: Annotated[str | None, Query(description="ISO-8601 or relative (-1h)")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> DeliveryPage:
    try:
        page = await _log(api).page(
            caller.id,
            endpoint_id=endpoint_id,
            event_type=event_type,
            status=status,
            since=_ms("since", since),
            until=_ms("until", until),
            limit=limit,
            cursor=cursor,
        )
    except ValueError as exc:
        raise ApiError(422, "invalid_field", str(exc), field="cursor") from exc
    return DeliveryPage(data=[DeliveryOut.of(v) for v in page.items], next_cursor=page.next_cursor)


@router.get("/v1/deliveries/{delivery_id}", summary="One delivery with all its attempts")
async def get_delivery(delivery_id: str, api: ApiDep, caller: CallerDep) -> DeliveryDetail:
    view = await _log(api).get(caller.id, delivery_id)
    if view is None:
        raise not_found("delivery", delivery_id)
    return DeliveryDetail.of(view)


@router.post(
    "/v1/deliveries/{delivery_id}/retry", status_code=202, summary="Send a delivery again now"
)
async def retry_delivery(delivery_id: str, api: ApiDep, caller: CallerDep) -> Queued:
    view = await _log(api).get(caller.id, delivery_id)
    if view is None:
        raise not_found("delivery", delivery_id)
    await _own(api, caller, view.endpoint_id)  # a deleted endpoint: nothing to send to
    await _send(api, [view.fresh_delivery()])
    return Queued(id=delivery_id)


@router.post(
    "/v1/endpoints/{endpoint_id}/recover",
    status_code=202,
    summary="Send again every failed delivery of an endpoint since a time",
)
async def recover(endpoint_id: str, body: Recover, api: ApiDep, caller: CallerDep) -> Count:
    return await _send_failed_again(api, caller, endpoint_id, body.since)


async def _send_failed_again(
    api: Api, caller: Account, endpoint_id: str | None, since: str | None
) -> Count:
    """The caller's failed deliveries (of one endpoint, if given) created since ``since``, sent
    again from attempt 1 with the same delivery id and ``webhook-id`` (receivers dedupe)."""
    if endpoint_id is not None:
        await _own(api, caller, endpoint_id)
    failed = await _log(api).matching(
        caller.id, endpoint_id=endpoint_id, status="failed", since=_ms("since", since) or 0
    )
    return Count(queued=await _send(api, [v.fresh_delivery() for v in failed]))


@router.post(
    "/v1/endpoints/{endpoint_id}/test",
    status_code=202,
    summary="Send a sample event of a chosen type to this endpoint only",
)
async def send_test(endpoint_id: str, body: TestEvent, api: ApiDep, caller: CallerDep) -> TestSent:
    endpoint = await _own(api, caller, endpoint_id)
    if body.event_type not in EVENT_TYPES:
        message = f"unknown event type {body.event_type!r}; one of {', '.join(EVENT_TYPES)}"
        raise ApiError(422, "invalid_field", message, field="event_type")
    event = sample_event(body.event_type, caller.id)
    delivery = Delivery(
        delivery_id=delivery_id_for(event["id"], endpoint.id),
        event_id=event["id"],
        event_type=body.event_type,
        account_id=caller.id,
        endpoint_id=endpoint.id,
        body=render_body(event),
        event_time=int(event["occurred_at"].timestamp() * 1000),
    )
    await _send(api, [delivery])
    return TestSent(delivery_id=delivery.delivery_id, event_id=delivery.event_id)


@router.get("/v1/endpoints/{endpoint_id}/health", summary="The endpoint's circuit breaker")
async def endpoint_health(endpoint_id: str, api: ApiDep, caller: CallerDep) -> Health:
    await _own(api, caller, endpoint_id)
    record = api.backends.health.get(endpoint_id) or {}
    since = record.get("since")
    return Health(
        endpoint_id=endpoint_id,
        breaker=record.get("breaker", "closed"),
        consecutive_failures=record.get("consecutive_failures", 0),
        since=_time(since) if isinstance(since, int) else None,
    )


@router.get("/v1/dead-letters", summary="Deliveries that ended without being delivered")
async def list_dead_letters(
    api: ApiDep,
    caller: CallerDep,
    endpoint_id: str | None = None,
    since: Annotated[str | None, Query(description="Created since: ISO-8601 or -2h")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> DeadLetterPage:
    """The delivery log's deliveries whose status is `failed` (dead-lettered after their last
    retry, or ended by a disabled or deleted endpoint), newest first, a page at a time."""
    try:
        page = await _log(api).page(
            caller.id,
            endpoint_id=endpoint_id,
            status="failed",
            since=_ms("since", since),
            limit=limit,
            cursor=cursor,
        )
    except ValueError as exc:
        raise ApiError(422, "invalid_field", str(exc), field="cursor") from exc
    return DeadLetterPage(
        data=[DeadLetterOut.of(v) for v in page.items], next_cursor=page.next_cursor
    )


@router.post(
    "/v1/dead-letters/redrive",
    status_code=202,
    summary="Send dead letters again from attempt 1 of a fresh schedule",
)
async def redrive(body: Redrive, api: ApiDep, caller: CallerDep) -> Count:
    """Every failed delivery of the account (or of one endpoint) created since ``since``, sent
    again with the same delivery id and ``webhook-id`` (receivers dedupe)."""
    return await _send_failed_again(api, caller, body.endpoint_id, body.since)


@router.get("/v1/stats/deliveries", summary="Attempts per minute by outcome")
async def stats(
    api: ApiDep,
    caller: CallerDep,
    endpoint_id: str | None = None,
    hours: Annotated[float, Query(gt=0, le=24 * 30)] = 6,
) -> Stats:
    since = int((time.time() - hours * 3600) * 1000)
    minutes = await _log(api).per_minute(caller.id, endpoint_id=endpoint_id, since=since)
    return Stats(minutes=[Minute(minute=_time(m), **counts) for m, counts in minutes.items()])
