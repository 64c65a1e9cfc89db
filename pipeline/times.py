"""Times as users write them: ISO-8601 (``2026-11-28T10:00:00Z``) or relative (``-2h``)."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from pipeline.exceptions import InvalidInput

_RELATIVE = re.compile(r"^-(\d+(?:\.\d+)?)([smhd])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time(text: str, *, now: float | None = None) -> int:
    """Unix milliseconds for ``text``; raises InvalidInput saying what is accepted."""
    now = time.time() if now is None else now
    if match := _RELATIVE.match(text.strip()):
        return int((now - float(match[1]) * _UNIT[match[2]]) * 1000)
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidInput(
            f"cannot read time {text!r}: use ISO-8601 (2026-11-28T10:00:00Z) or -30s/-15m/-2h/-1d"
        ) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)
