"""The headers of every webhook POST, exactly as the public integration page shows them.

:func:`webhook_headers` computes the same signatures as :mod:`pipeline.receiver` (the code
partners verify with, and the reference the tests compare against), on the body bytes as they
are, with ``hmac.digest`` and each secret's keys derived once (:class:`_Keys`), not per request.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Sequence

from velourcity_webhooks.signatures import _signing_key  # the SDK: the one copy

from pipeline.delivery.record import Delivery

USER_AGENT = "Velourcity-Webhooks/1.0"


class _Keys:
    """secret → (its UTF-8 bytes, its Standard Webhooks key), computed once per secret."""

    def __init__(self, size: int = 100_000) -> None:
        self._size = size
        self._keys: dict[str, tuple[bytes, bytes]] = {}

    def __call__(self, secret: str) -> tuple[bytes, bytes]:
        keys = self._keys.get(secret)
        if keys is None:
            if not secret:
                raise ValueError("a webhook secret may not be empty")
            if len(self._keys) >= self._size:
                self._keys.clear()
            keys = self._keys[secret] = (secret.encode(), _signing_key(secret))
        return keys


_keys = _Keys()


def webhook_headers(
    delivery: Delivery, body: bytes, secrets: Sequence[str], *, timestamp: int
) -> dict[str, str]:
    """Headers for one attempt. ``secrets`` newest first: during a rotation every secret signs
    (Standard Webhooks lists them space-separated); ``X-Velourcity-Signature`` uses the newest."""
    webhook_id = delivery.event_id
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    keys = [_keys(secret) for secret in secrets]
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Velourcity-Signature": "sha256=" + hmac.digest(keys[0][0], body, "sha256").hex(),
        "X-Velourcity-Event": delivery.event_type,
        "X-Velourcity-Delivery-Attempt": str(delivery.attempt),
        "X-Velourcity-Event-Id": webhook_id,
        "X-Velourcity-Delivery-Id": delivery.delivery_id,
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(
            "v1," + base64.b64encode(hmac.digest(key, signed, "sha256")).decode() for _, key in keys
        ),
    }
    if delivery.replay:  # receivers dedupe on webhook-id; this says the repeat was deliberate
        headers["X-Velourcity-Replay"] = "true"
    return headers
