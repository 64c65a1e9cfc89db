"""Receive Velourcity webhooks in FastAPI: one dependency reads the raw body, verifies it and
flags duplicates.

    from velourcity_webhooks import MemoryIdempotencyStore
    from velourcity_webhooks.fastapi import VerifiedWebhook, verified_webhook

    webhook = verified_webhook(secrets="whsec_...", idempotency=MemoryIdempotencyStore())

    @app.post("/webhooks")
    async def receive(hook: Annotated[VerifiedWebhook, Depends(webhook)]) -> dict[str, bool]:
        if not hook.duplicate:
            queue.put(hook.event)         # do the work later; answer within seconds
        return {"ok": True}

A request that fails verification never reaches the route: it gets 400 (not a webhook: a
header missing, a body that is not a JSON object) or 401 (not authentic, or too old) with
``{"detail": {"error": "<ErrorClass>", "message": "<why>"}}``. A route that raises after a
first delivery makes the store forget the id, so Velourcity's retry is processed instead of
being dropped as a duplicate.

Needs FastAPI: ``pip install 'velourcity-webhooks-sdk[fastapi]'``. The rest of the package has no
dependencies; this module is the only one that imports a framework.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

try:
    from fastapi import HTTPException, Request
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
    raise ModuleNotFoundError(
        "velourcity_webhooks.fastapi needs FastAPI: pip install 'velourcity-webhooks-sdk[fastapi]'"
    ) from exc

from velourcity_webhooks.idempotency import IdempotencyStore
from velourcity_webhooks.signatures import WebhookVerificationError, check_secrets, verify

__all__ = ["VerifiedWebhook", "verified_webhook"]

Secrets = str | Sequence[str]


@dataclass(frozen=True, slots=True)
class VerifiedWebhook:
    """An authentic webhook, and whether its ``webhook-id`` was seen before."""

    event: dict[str, Any]
    """The parsed body: ``{"id", "type", "created_at", "account_id", "data"}``."""
    webhook_id: str | None
    """``webhook-id`` (the event id, the same on every retry); from the body without it."""
    duplicate: bool
    """Seen before within the store's window: acknowledge with 2xx and do nothing else."""

    @property
    def event_type(self) -> str:
        return str(self.event.get("type", ""))


def verified_webhook(
    secrets: Secrets | Callable[[], Secrets],
    *,
    tolerance: int = 300,
    idempotency: IdempotencyStore | None = None,
) -> Callable[[Request], AsyncIterator[VerifiedWebhook]]:
    """A FastAPI dependency verifying each request with :func:`velourcity_webhooks.verify`.

    ``secrets``: one ``whsec_`` secret, several during a rotation, or a callable returning them
    on each request (to rotate without a restart). Fixed secrets are checked here, so a bad one
    fails at start-up. Without ``idempotency`` every webhook has ``duplicate=False``.
    """
    if not callable(secrets):
        fixed = check_secrets(secrets)

    def current() -> Secrets:
        return secrets() if callable(secrets) else fixed

    async def dependency(request: Request) -> AsyncIterator[VerifiedWebhook]:
        body = await request.body()
        try:
            event = verify(request.headers, body, current(), tolerance=tolerance)
        except WebhookVerificationError as exc:
            raise HTTPException(
                status_code=exc.http_status,
                detail={"error": type(exc).__name__, "message": str(exc)},
            ) from None  # the route never ran: nothing to chain, nothing to leak
        webhook_id = request.headers.get("webhook-id") or _event_id(event)
        duplicate, claimed = False, None
        if idempotency is not None and webhook_id is not None:
            duplicate = idempotency.seen_before(webhook_id)
            claimed = None if duplicate else webhook_id
        try:
            yield VerifiedWebhook(event=event, webhook_id=webhook_id, duplicate=duplicate)
        except BaseException:
            # The route failed (or was cancelled): the webhook was not handled, so its retry
            # must not be mistaken for a duplicate.
            if idempotency is not None and claimed is not None:
                idempotency.forget(claimed)
            raise

    return dependency


def _event_id(event: dict[str, Any]) -> str | None:
    """Without Standard Webhooks headers the signed body's ``id`` identifies the webhook."""
    value = event.get("id")
    return value if isinstance(value, str) and value else None
