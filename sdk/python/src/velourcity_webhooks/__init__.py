"""Verify Velourcity webhooks: no dependencies beyond the standard library.

    from velourcity_webhooks import verify

    event = verify(request.headers, raw_body, "whsec_...")  # raises WebhookVerificationError

Errors (each carries ``http_status``, the answer to send)::

    WebhookVerificationError
    ├── MissingHeader       400: no signature header, or an incomplete Standard Webhooks set
    ├── InvalidSignature    401: no signature matches (wrong secret, tampered body, bad header)
    ├── StaleTimestamp      401: webhook-timestamp outside the tolerance (default 300 s)
    └── MalformedBody       400: the signed body is not a JSON object

Also here: :class:`MemoryIdempotencyStore` (drop retried duplicates by ``webhook-id``);
:mod:`velourcity_webhooks.testing` (signed requests for your tests) and its pytest plugin;
:mod:`velourcity_webhooks.fastapi` (a FastAPI dependency, extra ``[fastapi]``).
"""

from __future__ import annotations

from velourcity_webhooks.idempotency import (
    DEFAULT_WINDOW_SECONDS,
    IdempotencyStore,
    MemoryIdempotencyStore,
)
from velourcity_webhooks.signatures import (
    InvalidSignature,
    MalformedBody,
    MissingHeader,
    StaleTimestamp,
    WebhookVerificationError,
    check_secrets,
    sign,
    standard_signature,
    velourcity_signature,
    verify,
)

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_WINDOW_SECONDS",
    "IdempotencyStore",
    "InvalidSignature",
    "MalformedBody",
    "MemoryIdempotencyStore",
    "MissingHeader",
    "StaleTimestamp",
    "WebhookVerificationError",
    "__version__",
    "check_secrets",
    "sign",
    "standard_signature",
    "velourcity_signature",
    "verify",
]
