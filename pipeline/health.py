"""Endpoint health as the workers report it (their circuit breakers), read from the compacted
endpoint-health topic for the API."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import orjson

from pipeline.compacted import CompactedReader
from pipeline.settings import Settings
from pipeline.topics import ENDPOINT_HEALTH


class HealthIndex:
    """Endpoint id → the latest health record (``breaker``, ``consecutive_failures``, ...)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, dict[str, Any]] = {}

    def get(self, endpoint_id: str) -> dict[str, Any] | None:
        with self._lock:
            return self._by_id.get(endpoint_id)

    def apply(self, endpoint_id: str, value: bytes | None) -> None:
        with self._lock:
            if value is None:
                self._by_id.pop(endpoint_id, None)
                return
            with contextlib.suppress(orjson.JSONDecodeError):  # the next record replaces it
                self._by_id[endpoint_id] = orjson.loads(value)


class HealthCache(HealthIndex):
    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self._reader = CompactedReader(settings, settings.topic(ENDPOINT_HEALTH), self.apply)

    def start(self) -> HealthCache:
        self._reader.start()
        return self

    def stop(self) -> None:
        self._reader.stop()

    async def wait_ready_async(self, seconds: float = 60.0) -> None:
        await self._reader.wait_ready_async(seconds)
