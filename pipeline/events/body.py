"""The webhook body partners receive, rendered once per event.

The seed's standard format: ``{"id", "type", "created_at", "account_id", "data"}``. Signatures
cover exact bytes, so there is one canonical encoding: UTF-8 JSON without insignificant
whitespace, keys in schema order, timestamps as ISO-8601 UTC with milliseconds and ``Z``,
amounts as integers in minor units.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson


def iso_utc(moment: datetime) -> str:
    """``2026-11-28T04:41:44.123Z``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _default(value: object) -> object:
    if isinstance(value, datetime):
        return iso_utc(value)
    raise TypeError(f"cannot put {type(value).__name__} in a webhook body")


def render_body(event: dict[str, Any]) -> bytes:
    """The exact bytes POSTed for ``event`` (an envelope as decoded from Avro)."""
    payload = {
        "id": event["id"],
        "type": event["type"],
        "created_at": event["occurred_at"],
        "account_id": event["account_id"],
        "data": event["data"],
    }
    return orjson.dumps(payload, default=_default, option=orjson.OPT_PASSTHROUGH_DATETIME)
