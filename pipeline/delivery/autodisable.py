"""Auto-disable: an endpoint failing for ``auto_disable_days`` without a single success is
disabled, and its account told through its other endpoints (``endpoint.disabled``).

:class:`FailureStreaks` is the bookkeeping, pure (the clock is an argument): the start of each
endpoint's run of failures. The start survives restarts and rebalances on the endpoint-health
topic (the sender publishes it with every breaker change), where a new owner picks it up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

DAY_MS = 86_400_000


class FailureStreaks:
    def __init__(
        self, days: float, known: Callable[[str], dict[str, Any] | None] = lambda _id: None
    ) -> None:
        self._limit_ms = days * DAY_MS
        self._known = known
        """What the endpoint-health topic says of an endpoint (its ``failing_since``)."""
        self._since: dict[str, int] = {}

    def record(self, endpoint_id: str, ok: bool, now_ms: int) -> int | None:
        """An attempt's outcome. Returns when the streak began (unix ms) once it is long
        enough to disable the endpoint (the streak is then forgotten), else None."""
        if ok:
            self._since.pop(endpoint_id, None)
            return None
        since = self._since.get(endpoint_id)
        if since is None:
            since = (self._known(endpoint_id) or {}).get("failing_since") or now_ms
            self._since[endpoint_id] = since
        if now_ms - since >= self._limit_ms:
            del self._since[endpoint_id]
            return since
        return None

    def since(self, endpoint_id: str) -> int | None:
        return self._since.get(endpoint_id)
