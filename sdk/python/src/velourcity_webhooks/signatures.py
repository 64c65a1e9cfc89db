"""Verify Velourcity webhooks on the receiving side (standard library only).

Every webhook carries ``X-Velourcity-Signature: sha256=<hex>``, an HMAC-SHA256 of the raw body
keyed with the whole endpoint secret (``whsec_...``, UTF-8), and the Standard Webhooks headers
``webhook-id``, ``webhook-timestamp`` and ``webhook-signature: v1,<base64>``, an HMAC-SHA256 of
``{id}.{timestamp}.{body}`` keyed with the base64-decoded part of the secret after ``whsec_``.
During a secret rotation each signature header holds several space-separated signatures.

    event = verify(request.headers, request.body, "whsec_...")   # raises on any problem

Only the Standard Webhooks scheme signs a timestamp, so only it protects against replays; when
its headers are present :func:`verify` checks both schemes and the timestamp. During a rotation
``X-Velourcity-Signature`` is made with the newest secret only, so when ``webhook-signature``
holds several signatures the Standard Webhooks check alone decides: a receiver still holding the
old secret keeps verifying until the grace period ends.

    WebhookVerificationError
    ├── MissingHeader       no signature header, or an incomplete Standard Webhooks set
    ├── InvalidSignature    no signature matches (wrong secret, tampered body, bad header)
    ├── StaleTimestamp      webhook-timestamp further than ``tolerance`` seconds from now
    └── MalformedBody       the signed body is not a JSON object

Each error class carries the HTTP status a receiver should answer (``http_status``): 400 for a
request that is not a webhook at all (missing header, malformed body), 401 for one that is not
authentic or no longer fresh. Messages name the header and the reason, never a secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

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

_VELOURCITY_HEADER = "X-Velourcity-Signature"
_KEY_PREFIX = "whsec_"
_MAX_TIMESTAMP_DIGITS = 12
"""Unix seconds have 10 digits until the year 2286; far longer is garbage, and Python refuses to
parse ints of more than 4300 digits (a ValueError that must not escape as a crash)."""


class WebhookVerificationError(Exception):
    """A webhook that must be rejected (answer 4xx); the message says why."""

    http_status = 400
    """What a receiver should answer, so framework helpers need no table of their own."""


class MissingHeader(WebhookVerificationError):
    """A header the check needs is absent."""

    http_status = 400


class InvalidSignature(WebhookVerificationError):
    """No signature matches the body with any of the secrets, or a header is unreadable."""

    http_status = 401


class StaleTimestamp(WebhookVerificationError):
    """``webhook-timestamp`` is too far in the past or the future (possible replay)."""

    http_status = 401


class MalformedBody(WebhookVerificationError):
    """The body is authentic but is not a JSON object."""

    http_status = 400


def _signing_key(secret: str) -> bytes:
    """The Standard Webhooks key: base64-decode the secret after its ``whsec_`` prefix."""
    encoded = secret.removeprefix(_KEY_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("a webhook secret must be 'whsec_' followed by base64") from exc
    if not key:
        raise ValueError("a webhook secret may not be empty")
    return key


def velourcity_signature(raw_body: bytes, secret: str) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of the raw body keyed with the whole secret (UTF-8)."""
    if not secret:
        raise ValueError("a webhook secret may not be empty")
    digest = hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def standard_signature(raw_body: bytes, secret: str, webhook_id: str, timestamp: int) -> str:
    """``v1,<base64>``: the Standard Webhooks signature of ``{id}.{timestamp}.{body}``."""
    signed = f"{webhook_id}.{timestamp}.".encode() + raw_body
    digest = hmac.new(_signing_key(secret), signed, hashlib.sha256).digest()
    return f"v1,{base64.b64encode(digest).decode()}"


def sign(raw_body: bytes, secret: str, *, webhook_id: str, timestamp: int) -> dict[str, str]:
    """The signature headers exactly as the sender computes them (the reference computation).

    Meant for partners' unit tests: ``verify(sign(body, secret, ...), body, secret)`` passes.
    """
    return {
        _VELOURCITY_HEADER: velourcity_signature(raw_body, secret),
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": standard_signature(raw_body, secret, webhook_id, timestamp),
    }


def check_secrets(secret: str | Sequence[str]) -> list[str]:
    """The secrets as a list, each checked usable; ``ValueError`` otherwise (never echoing one).

    Framework helpers call it at start-up so a misconfigured secret fails there, not as a 500
    on the first webhook.
    """
    secrets = [secret] if isinstance(secret, str) else list(secret)
    if not secrets:
        raise ValueError("verify() needs at least one secret")
    for each in secrets:
        _signing_key(each)  # an unusable secret is a setup error, whatever the headers
    return secrets


def _check_velourcity(value: str, raw_body: bytes, secrets: list[str]) -> None:
    given = [s for s in value.split() if s.startswith("sha256=")]
    if not given:
        raise InvalidSignature(f"{_VELOURCITY_HEADER} holds no 'sha256=<hex>' signature")
    expected = [velourcity_signature(raw_body, s).encode() for s in secrets]
    # Compare every pair so the time taken does not depend on which one matched.
    matches = [hmac.compare_digest(e, g.encode()) for e in expected for g in given]
    if not any(matches):
        raise InvalidSignature(
            f"{_VELOURCITY_HEADER} does not match the body with any of the "
            f"{len(secrets)} secret(s) (wrong secret or modified body?)"
        )


def _check_standard(
    lowered: Mapping[str, str], raw_body: bytes, secrets: list[str], tolerance: int, now: float
) -> None:
    names = ("webhook-id", "webhook-timestamp", "webhook-signature")
    missing = [n for n in names if not lowered.get(n)]
    if missing:
        raise MissingHeader(f"incomplete Standard Webhooks headers: missing {', '.join(missing)}")
    webhook_id, raw_timestamp, value = (lowered[n] for n in names)
    readable = raw_timestamp.isascii() and raw_timestamp.isdigit()
    if not readable or len(raw_timestamp) > _MAX_TIMESTAMP_DIGITS:
        raise InvalidSignature(
            f"webhook-timestamp must be integer unix seconds: {raw_timestamp[:40]!r}"
        )
    timestamp = int(raw_timestamp)
    given = []
    for token in value.split():
        version, _, encoded = token.partition(",")
        if version == "v1":
            try:
                given.append(base64.b64decode(encoded, validate=True))
            except binascii.Error:
                continue
    if not given:
        raise InvalidSignature("webhook-signature holds no readable 'v1,<base64>' signature")
    expected = [
        base64.b64decode(standard_signature(raw_body, s, webhook_id, timestamp).partition(",")[2])
        for s in secrets
    ]
    if not any([hmac.compare_digest(e, g) for e in expected for g in given]):
        raise InvalidSignature(
            f"webhook-signature does not match id, timestamp and body with any of the "
            f"{len(secrets)} secret(s) (wrong secret or modified body?)"
        )
    skew = now - timestamp
    if abs(skew) > tolerance:
        when = f"{skew:.0f}s in the past" if skew > 0 else f"{-skew:.0f}s in the future"
        raise StaleTimestamp(
            f"webhook-timestamp {timestamp} is {when}; accepted: within {tolerance}s of now"
        )


def verify(
    headers: Mapping[str, str],
    raw_body: bytes | bytearray | memoryview,
    secret: str | Sequence[str],
    *,
    tolerance: int = 300,
    now: float | None = None,
) -> dict[str, Any]:
    """Check a webhook's signatures and return its parsed JSON event.

    ``headers`` is looked up case-insensitively; ``raw_body`` must be the bytes as received.
    ``secret`` may be a list during a rotation: any of them may match. ``X-Velourcity-Signature``
    is checked when present (unless ``webhook-signature`` holds several signatures: a rotation,
    see above); the Standard Webhooks headers, when present, must all be there, match, and carry
    a timestamp within ``tolerance`` seconds of ``now`` (default: the clock).
    At least one scheme is required. Raises a :class:`WebhookVerificationError` subclass, or
    ``ValueError`` for an unusable secret (empty, or not ``whsec_`` + base64), or ``TypeError``
    when ``raw_body`` is text (decoding and re-encoding may change the signed bytes).
    """
    if not isinstance(raw_body, bytes | bytearray | memoryview):
        raise TypeError(
            "raw_body must be the body bytes as received, not parsed or re-encoded "
            f"(got {type(raw_body).__name__})"
        )
    body = bytes(raw_body)
    secrets = check_secrets(secret)
    lowered: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        lowered[key] = f"{lowered[key]} {value}" if key in lowered else value
    velourcity = lowered.get(_VELOURCITY_HEADER.lower())
    standard = any(n in lowered for n in ("webhook-id", "webhook-timestamp", "webhook-signature"))
    if velourcity is None and not standard:
        raise MissingHeader(
            f"no signature header: expected {_VELOURCITY_HEADER} and/or webhook-signature"
        )
    rotating = standard and len(lowered.get("webhook-signature", "").split()) > 1
    if velourcity is not None and not rotating:
        _check_velourcity(velourcity, body, secrets)
    if standard:
        clock = time.time() if now is None else now
        _check_standard(lowered, body, secrets, tolerance, clock)
    try:
        event = json.loads(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise MalformedBody(f"the body is not valid UTF-8 JSON: {exc}") from exc
    if not isinstance(event, dict):
        raise MalformedBody(f"the body is JSON but not an object (got {type(event).__name__})")
    return event
