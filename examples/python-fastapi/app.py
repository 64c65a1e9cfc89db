"""Receive Velourcity webhooks with FastAPI, verified by the SDK's ``velourcity_webhooks.verify``.

    VELOURCITY_WEBHOOK_SECRET=whsec_... uvicorn app:create_app --factory --port 3000

The same handler as ../node-express: the raw body is verified (both signatures, timestamp
window, any of several secrets during a rotation), the answer is 200 at once and the work runs
in a background task afterwards, and each ``webhook-id`` is processed once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import BackgroundTasks, FastAPI, Request
from fastapi.responses import JSONResponse
from velourcity_webhooks import MissingHeader, WebhookVerificationError, verify

log = logging.getLogger("webhooks")

# Retries of one delivery span about 27.5 h with the same webhook-id: remember ids a bit longer.
# Several processes, or dead-letter redrives days later, need a shared store (Redis SET NX EX).
DEDUPE_TTL_SECONDS = 30 * 60 * 60

OnEvent = Callable[[dict[str, Any]], None]


class SeenIds:
    """webhook-ids seen recently; each is forgotten ``ttl`` seconds after it was first seen."""

    def __init__(self, ttl: float, clock: Callable[[], float]) -> None:
        self._ttl = ttl
        self._clock = clock
        self._expiry: dict[str, float] = {}  # insertion order == expiry order (fixed TTL)

    def first_time(self, webhook_id: str) -> bool:
        now = self._clock()
        for seen, expires in list(self._expiry.items()):  # drop expired ids from the front
            if expires > now:
                break
            del self._expiry[seen]
        if webhook_id in self._expiry:
            return False
        self._expiry[webhook_id] = now + self._ttl
        return True

    def forget(self, webhook_id: str) -> None:
        self._expiry.pop(webhook_id, None)


def handle_event(event: dict[str, Any]) -> None:
    """The real work; runs after Velourcity already has its 200."""
    log.info("%s for order %s", event["type"], event["data"].get("order_id"))


def create_app(
    secrets: str | Sequence[str] | None = None,
    *,
    on_event: OnEvent = handle_event,
    tolerance: int = 300,
    clock: Callable[[], float] = time.time,
) -> FastAPI:
    """The app; ``secrets`` default to ``VELOURCITY_WEBHOOK_SECRET`` (comma-separated)."""
    if secrets is None:
        secrets = [s.strip() for s in os.environ.get("VELOURCITY_WEBHOOK_SECRET", "").split(",")]
        secrets = [s for s in secrets if s]
    if not secrets:
        raise RuntimeError("set VELOURCITY_WEBHOOK_SECRET (whsec_...; comma-separated to rotate)")
    secrets = [secrets] if isinstance(secrets, str) else list(secrets)
    # verify() checks the secrets first: a bad one fails here, not as a 500 on every webhook.
    with contextlib.suppress(MissingHeader):
        verify({}, b"", secrets)
    seen = SeenIds(DEDUPE_TTL_SECONDS, clock)
    app = FastAPI(title="Velourcity webhook receiver")

    def process(event: dict[str, Any], webhook_id: str) -> None:
        # Acknowledged before this runs, so Velourcity will not resend it if it fails: forget
        # the id so a redrive gets through, or store the event durably before answering 200.
        try:
            on_event(event)
        except Exception:
            seen.forget(webhook_id)
            log.exception("webhook %s: processing failed", webhook_id)

    @app.post("/webhooks")
    async def receive(request: Request, background: BackgroundTasks) -> JSONResponse:
        # The exact bytes: the signatures cover them (a parsed-and-re-encoded body may differ).
        raw = await request.body()
        try:
            event = verify(request.headers, raw, secrets, tolerance=tolerance, now=clock())
        except WebhookVerificationError as exc:
            # 400: not a webhook at all; 401: not authentic or stale. Never names a secret.
            log.warning("webhook rejected (%s): %s", exc.http_status, exc)
            return JSONResponse({"error": str(exc)}, status_code=exc.http_status)
        webhook_id = request.headers.get("webhook-id") or event["id"]
        if not seen.first_time(webhook_id):
            return JSONResponse({"received": True, "duplicate": True})
        background.add_task(process, event, webhook_id)  # runs after the response is sent
        return JSONResponse({"received": True})

    return app


if __name__ == "__main__":
    import uvicorn

    logging.basicConfig(level=logging.INFO)
    uvicorn.run(create_app(), host="127.0.0.1", port=int(os.environ.get("PORT", "3000")))
