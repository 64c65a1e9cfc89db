"""The headers of every webhook POST, exactly as the public integration page shows them.

The signatures are computed by :mod:`pipeline.receiver`, the same code partners verify with.
"""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.delivery.record import Delivery
from pipeline.receiver import standard_signature, velourcity_signature

USER_AGENT = "Velourcity-Webhooks/1.0"


def webhook_headers(
    delivery: Delivery, body: bytes, secrets: Sequence[str], *, timestamp: int
) -> dict[str, str]:
    """Headers for one attempt. ``secrets`` newest first: during a rotation every secret signs
    (Standard Webhooks lists them space-separated); ``X-Velourcity-Signature`` uses the newest."""
    webhook_id = delivery.event_id
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Velourcity-Signature": velourcity_signature(body, secrets[0]),
        "X-Velourcity-Event": delivery.event_type,
        "X-Velourcity-Delivery-Attempt": str(delivery.attempt),
        "X-Velourcity-Event-Id": delivery.event_id,
        "X-Velourcity-Delivery-Id": delivery.delivery_id,
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(
            standard_signature(body, secret, webhook_id, timestamp) for secret in secrets
        ),
    }
    if delivery.replay:  # receivers dedupe on webhook-id; this says the repeat was deliberate
        headers["X-Velourcity-Replay"] = "true"
    return headers
