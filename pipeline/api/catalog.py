"""``/v1/event-types``: the event catalog (:mod:`pipeline.events.catalog`): every event type
with the JSON Schema of its webhook body, current version and history, and an example."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from pipeline.api.context import CallerDep
from pipeline.api.errors import not_found
from pipeline.events.catalog import catalog

router = APIRouter(prefix="/v1/event-types", tags=["event types"])


class EventTypeVersion(BaseModel):
    version: int
    json_schema: dict[str, Any] = Field(
        alias="schema", description="JSON Schema (2020-12) of the webhook body."
    )


class EventType(BaseModel):
    type: str = Field(examples=["order.created"])
    kind: Literal["domain", "operational"] = Field(
        description="domain: published by Velourcity's services (a test event can be sent);"
        " operational: sent by the webhook system about your endpoints."
    )
    description: str
    current_version: int
    versions: list[EventTypeVersion] = Field(description="Oldest first; the last is current.")
    example: dict[str, Any] = Field(description="A webhook body of the current version.")


class EventTypeList(BaseModel):
    data: list[EventType]


@lru_cache(maxsize=1)
def _served() -> tuple[EventType, ...]:
    return tuple(EventType.model_validate(entry) for entry in catalog())


@router.get("", summary="Every event type, with its schemas and an example")
async def list_event_types(_caller: CallerDep) -> EventTypeList:
    return EventTypeList(data=list(_served()))


@router.get("/{event_type}", summary="One event type, with its schemas and an example")
async def get_event_type(event_type: str, _caller: CallerDep) -> EventType:
    for entry in _served():
        if entry.type == event_type:
            return entry
    raise not_found("event type", event_type)
