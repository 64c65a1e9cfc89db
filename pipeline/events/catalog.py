"""The event catalog: every event type a partner can subscribe to, the JSON Schema of the
webhook body it receives (current version and history), and a realistic example.

The schemas are derived from the Avro schemas in ``schemas/`` (the contract the domain
services publish with), for the body as :func:`~pipeline.events.body.render_body` writes it:
the envelope's ``occurred_at`` is the body's ``created_at``, timestamps are ISO-8601 strings,
amounts integers in minor units. Fields may be added in later versions (Avro's evolution
rules), so the schemas leave ``additionalProperties`` open: a receiver must accept fields it
does not know. ``endpoint.disabled`` is the pipeline's own event (no Avro schema): its schema
is written here.

``python -m pipeline.events.catalog > docs/event-catalog.md`` writes the partner's page;
``tests/unit/test_catalog.py`` fails when the committed page falls behind the schemas.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import orjson

from pipeline.events.body import render_body
from pipeline.events.registry import EventSchema, SchemaRegistry, default_registry
from pipeline.events.samples import sample_event
from pipeline.events.types import EVENT_TYPES, OPERATIONAL_EVENTS

JSON_SCHEMA = "https://json-schema.org/draft/2020-12/schema"
EXAMPLE_SEED = 7
EXAMPLE_TIME = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

_SCALARS = {
    "string": {"type": "string"},
    "bytes": {"type": "string"},
    "int": {"type": "integer"},
    "long": {"type": "integer"},
    "float": {"type": "number"},
    "double": {"type": "number"},
    "boolean": {"type": "boolean"},
    "null": {"type": "null"},
}
_TIMESTAMPS = ("timestamp-millis", "timestamp-micros")


def _json_schema(avro: Any, named: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One Avro type as JSON Schema, as it appears in the webhook body."""
    if isinstance(avro, str):
        if avro in _SCALARS:
            return dict(_SCALARS[avro])
        return dict(named[avro])  # a named type defined earlier in the schema
    if isinstance(avro, list):  # a union: ["null", X] is an optional X
        return {"anyOf": [_json_schema(branch, named) for branch in avro]}
    kind = avro["type"]
    if avro.get("logicalType") in _TIMESTAMPS:
        out: dict[str, Any] = {"type": "string", "format": "date-time"}
    elif kind == "record":
        out = {
            "type": "object",
            "properties": {
                f["name"]: _with_doc(_json_schema(f["type"], named), f) for f in avro["fields"]
            },
            # every field is in the body (an optional one as null)
            "required": [f["name"] for f in avro["fields"]],
        }
    elif kind == "array":
        out = {"type": "array", "items": _json_schema(avro["items"], named)}
    elif kind == "map":
        out = {"type": "object", "additionalProperties": _json_schema(avro["values"], named)}
    elif kind == "enum":
        out = {"type": "string", "enum": list(avro["symbols"])}
    elif kind == "fixed":
        out = {"type": "string"}
    else:
        out = _json_schema(kind, named)
    out = _with_doc(out, avro)
    if kind in ("record", "enum", "fixed") and "name" in avro:
        named[avro["name"]] = out
        if "namespace" in avro:
            named[f"{avro['namespace']}.{avro['name']}"] = out
    return out


def _with_doc(schema: dict[str, Any], avro: Any) -> dict[str, Any]:
    if isinstance(avro, dict) and avro.get("doc"):
        return {"description": avro["doc"], **schema}
    return schema


def body_schema(schema: EventSchema) -> dict[str, Any]:
    """The JSON Schema of the webhook body for one version of an event type's Avro schema."""
    envelope = _json_schema(schema.definition, {})
    fields = envelope["properties"]
    properties = {
        "id": fields["id"],
        "type": {"const": schema.event_type, "description": f"Always {schema.event_type!r}."},
        "created_at": {
            "type": "string",
            "format": "date-time",
            "description": "When it happened (UTC, ISO-8601 with milliseconds).",
        },
        "account_id": fields["account_id"],
        "data": fields["data"],
    }
    return {
        "$schema": JSON_SCHEMA,
        "title": f"{schema.event_type} (version {schema.version})",
        "description": schema.definition.get("doc", ""),
        "type": "object",
        "properties": properties,
        "required": list(properties),
    }


_ENDPOINT_DISABLED: dict[str, Any] = {
    "$schema": JSON_SCHEMA,
    "title": "endpoint.disabled (version 1)",
    "description": (
        "endpoint.disabled: one of the account's endpoints failed for days without a success"
        " and was disabled; sent to the account's other endpoints that subscribe to it."
    ),
    "type": "object",
    "properties": {
        "id": {"type": "string", "description": "Unique event id: 'evt_' + a ULID."},
        "type": {"const": "endpoint.disabled", "description": "Always 'endpoint.disabled'."},
        "created_at": {"type": "string", "format": "date-time"},
        "account_id": {"type": "string"},
        "data": {
            "type": "object",
            "properties": {
                "endpoint_id": {"type": "string", "description": "The endpoint disabled."},
                "url": {"type": "string"},
                "reason": {"type": "string", "description": "Why, in words."},
                "failing_since": {
                    "type": "string",
                    "format": "date-time",
                    "description": "The start of its run of failures.",
                },
            },
            "required": ["endpoint_id", "url", "reason", "failing_since"],
        },
    },
    "required": ["id", "type", "created_at", "account_id", "data"],
}


def example(event_type: str, account_id: str = "acct_example") -> dict[str, Any]:
    """A realistic webhook body of the type (the same generator the test events use)."""
    if event_type == "endpoint.disabled":
        return {
            "id": "evt_01KBX0TQ7W3N5R6M8P9Q2S4T6V",
            "type": "endpoint.disabled",
            "created_at": "2026-12-01T12:00:00.000Z",
            "account_id": account_id,
            "data": {
                "endpoint_id": "ep_01KBWZ3H4J5K6M7N8P9Q0R1S2T",
                "url": "https://partner.example/webhooks",
                "reason": "failing without a success since 2026-11-26T11:58:02.000Z",
                "failing_since": "2026-11-26T11:58:02.000Z",
            },
        }
    event = sample_event(event_type, account_id, rng=random.Random(EXAMPLE_SEED))
    event["id"] = "evt_01KBX0TQ7W3N5R6M8P9Q2S4T6V"
    event["occurred_at"] = EXAMPLE_TIME
    event["data"] = _pin_times(event["data"])
    for key, pinned in _PINNED_IDS.items():  # ULIDs: new each time
        if key in event["data"]:
            event["data"][key] = pinned
    parsed: dict[str, Any] = orjson.loads(render_body(event))
    return parsed


_PINNED_IDS = {
    "order_id": "ord_01KBX0RZ2M4N6P8Q0R2S4T6V8W",
    "payment_id": "pay_01KBX0TP1A3B5C7D9E1F3G5H7J",
}


def _pin_times(value: Any) -> Any:
    """Sample times are relative to now; the catalog's example is the same every time."""
    if isinstance(value, datetime):
        return EXAMPLE_TIME
    if isinstance(value, dict):
        return {k: _pin_times(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_pin_times(v) for v in value]
    return value


def catalog(registry: SchemaRegistry | None = None) -> list[dict[str, Any]]:
    """Every subscribable event type: description, versions (oldest first) with their
    schemas, the current version, and an example of the current version."""
    registry = registry or default_registry()
    entries = []
    for event_type in EVENT_TYPES:
        versions = sorted(
            (s for s in registry.all() if s.event_type == event_type), key=lambda s: s.version
        )
        current = registry.current(event_type)
        entries.append(
            {
                "type": event_type,
                "kind": "domain",
                "description": current.definition.get("doc", ""),
                "current_version": current.version,
                "versions": [{"version": s.version, "schema": body_schema(s)} for s in versions],
                "example": example(event_type),
            }
        )
    for event_type in OPERATIONAL_EVENTS:
        entries.append(
            {
                "type": event_type,
                "kind": "operational",
                "description": _ENDPOINT_DISABLED["description"],
                "current_version": 1,
                "versions": [{"version": 1, "schema": _ENDPOINT_DISABLED}],
                "example": example(event_type),
            }
        )
    return entries


def markdown(entries: list[dict[str, Any]]) -> str:
    """The catalog as the partner's page (docs/event-catalog.md)."""
    lines = [
        "# Event catalog",
        "",
        "Every event type you can subscribe to, the JSON Schema of the webhook body you receive",
        "and an example. The same catalog is served at `GET /v1/event-types` and shown in the",
        "dashboard. New versions only add fields: accept fields you do not know.",
        "(Generated from `schemas/` by `python -m pipeline.events.catalog`.)",
        "",
    ]
    for entry in entries:
        lines += [f"- [`{entry['type']}`](#{entry['type'].replace('.', '')})"]
    for entry in entries:
        current = entry["versions"][-1]["schema"]
        lines += ["", f"## {entry['type']}", "", entry["description"], ""]
        lines += [
            f"Current version: {entry['current_version']}"
            + (
                f" (earlier: {', '.join(str(v['version']) for v in entry['versions'][:-1])})"
                if len(entry["versions"]) > 1
                else ""
            ),
            "",
            "| field of `data` | type | description |",
            "| --- | --- | --- | --- |",
        ]
        data = current["properties"]["data"]
        for name, field in data.get("properties", {}).items():
            lines.append(f"| `{name}` | {_type_name(field)} | {field.get('description', '')} |")
        lines += [
            "",
            "Example:",
            "",
            "```json",
            orjson.dumps(entry["example"], option=orjson.OPT_INDENT_2).decode(),
            "```",
        ]
    return "\n".join(lines) + "\n"


def _type_name(field: dict[str, Any]) -> str:
    if "anyOf" in field:
        names = [_type_name(branch) for branch in field["anyOf"]]
        return " or ".join(n for n in names if n != "null") + (
            " or null" if "null" in names else ""
        )
    if field.get("format") == "date-time":
        return "date-time"
    if field.get("type") == "array":
        return f"array of {_type_name(field['items'])}"
    return str(field.get("type", "any"))


if __name__ == "__main__":
    print(markdown(catalog()), end="")
