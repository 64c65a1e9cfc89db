"""Webhook verification: re-exported from the partner SDK, ``velourcity_webhooks``.

The code lives in ``sdk/python`` (distribution ``velourcity-webhooks-sdk``), the one copy both
partners and the sender use: :mod:`pipeline.delivery.signing` signs with
:func:`standard_signature` and :func:`velourcity_signature` from here. Partners should import
``velourcity_webhooks`` instead of this module.
"""

from __future__ import annotations

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

__all__ = [
    "InvalidSignature",
    "MalformedBody",
    "MissingHeader",
    "StaleTimestamp",
    "WebhookVerificationError",
    "check_secrets",
    "sign",
    "standard_signature",
    "velourcity_signature",
    "verify",
]
