"""The endpoint value object, its validation and its JSON form on the endpoints topic."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from pipeline.delivery.ssrf import SyncResolver, validate_endpoint_url
from pipeline.endpoints.filters import FilterError, compiled
from pipeline.endpoints.filters import check_filter as _check_filter
from pipeline.events.ids import ulid
from pipeline.events.types import check_subscribable
from pipeline.exceptions import InvalidEndpoint
from pipeline.settings import Settings

SECRET_PREFIX = "whsec_"  # noqa: S105  (a prefix, not a secret)
MIN_SECRET_BYTES = 24
MAX_DESCRIPTION = 500
DEFAULT_GRACE_SECONDS = 86_400
MAX_GRACE_SECONDS = 7 * 86_400
MAX_PREVIOUS_SECRETS = 5
"""Each one adds a signature to every webhook; a partner mid-rollout needs one or two."""
_ACCOUNT_ID = re.compile(r"[A-Za-z0-9_]{1,64}")
MAX_HEADERS = 20
MAX_HEADER_VALUE = 4096
RESERVED_HEADERS = frozenset(
    {
        "host", "content-type", "content-length", "user-agent", "transfer-encoding",
        "connection", "keep-alive", "te", "trailer", "upgrade", "expect",
        "proxy-authorization", "proxy-connection", "traceparent", "tracestate",
    }
)  # fmt: skip
"""Headers an endpoint may not set: the request's framing and ours (nor, by prefix,
``webhook-*`` and ``X-Velourcity-*``, the signature and the event's own headers)."""
RESERVED_PREFIXES = ("webhook-", "x-velourcity-")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}")  # an RFC 9110 token
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")  # no CR, LF or other control bytes
Headers = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    id: str
    account_id: str
    url: str
    event_types: tuple[str, ...] | None
    """The types it subscribes to; ``None`` means every type."""
    secret: str = field(repr=False)  # never in a log line or a traceback's locals
    """The newest secret: the only one behind ``X-Velourcity-Signature``."""
    previous_secrets: tuple[tuple[str, int], ...] = field(default=(), repr=False)
    """``(secret, expires_at unix ms)`` of replaced secrets, newest first: each keeps signing
    (in ``webhook-signature``) until it expires, so partners can switch without losing any."""
    enabled: bool = True
    disabled_reason: str | None = None
    description: str = ""
    rate_limit: float | None = None
    """Attempts per second at most, all workers together (None: no limit of its own)."""
    ordered: bool = False
    """Strict per-order ordering: a later event of an order is not attempted before an earlier
    one was delivered or dead-lettered (see :mod:`pipeline.delivery.ordering`). Off: best
    effort, no event ever waits for another."""
    filter: str | None = None
    """A content filter over the webhook body (:mod:`pipeline.endpoints.filters`), e.g.
    ``data.restaurant_id in ["r_1"]``: only the events it matches are sent. None: all."""
    headers: Headers = field(default=(), repr=False)  # like the secret: never in a log line
    """Custom headers sent with every webhook (e.g. a partner's token for their gateway),
    ``(name, value)`` pairs. Shown masked (:meth:`masked_headers`) but to the owner's own
    ``GET .../headers``; their values are blanked in stored response excerpts."""
    listen: bool = False
    """A ``velourcity listen`` session's endpoint: workers never POST to it; the session reads
    its deliveries from Kafka and forwards them to ``url``, a URL on the developer's machine."""
    created_at: int
    """Unix milliseconds."""
    updated_at: int

    def wants(self, event_type: str) -> bool:
        return self.enabled and (self.event_types is None or event_type in self.event_types)

    def matches(self, body: Any) -> bool:
        """Whether its content filter lets this webhook body (parsed JSON) through."""
        return self.filter is None or compiled(self.filter)(body)

    def masked_headers(self) -> dict[str, str]:
        """The custom headers' names, their values masked (the last 4 characters of a long
        one shown, to tell two tokens apart)."""
        return {name: mask(value) for name, value in self.headers}

    def signing_secrets(self, now_ms: int) -> tuple[str, ...]:
        """The secrets that sign a webhook sent at ``now_ms``: the current one, then the
        previous ones not yet expired, newest first."""
        return (self.secret, *(s for s, expires_at in self.previous_secrets if expires_at > now_ms))

    def rotate(
        self, grace_seconds: int = DEFAULT_GRACE_SECONDS, *, now_ms: int | None = None
    ) -> Endpoint:
        """A new current secret; the replaced one keeps signing for ``grace_seconds``.

        Older secrets still in their grace keep it, but no longer than the new grace: rotating
        with 0 (say, after a leak) leaves the new secret alone at once.
        """
        now = _now_ms() if now_ms is None else now_ms
        until = now + check_grace(grace_seconds) * 1000
        replaced = ((self.secret, until), *self.previous_secrets)
        kept = tuple((s, min(e, until)) for s, e in replaced if min(e, until) > now)
        return self.replace(secret=new_secret(), previous_secrets=kept[:MAX_PREVIOUS_SECRETS])

    def replace(self, **changes: Any) -> Endpoint:
        return dataclasses.replace(self, updated_at=_now_ms(), **changes)

    def to_json(self) -> bytes:
        return orjson.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, raw: bytes) -> Endpoint:
        # Fields this version does not know (written by a newer one) are left out, so a rolling
        # upgrade never makes an endpoint unreadable.
        known = {f.name for f in dataclasses.fields(cls)}
        fields = {k: v for k, v in orjson.loads(raw).items() if k in known}
        types = fields.get("event_types")
        fields["event_types"] = tuple(types) if types is not None else None
        # Records written before rotation existed have no previous_secrets.
        previous = fields.get("previous_secrets") or ()
        fields["previous_secrets"] = tuple((str(s), int(e)) for s, e in previous)
        fields["headers"] = tuple((str(n), str(v)) for n, v in fields.get("headers") or ())
        return cls(**fields)

    def public(self) -> dict[str, Any]:
        """The endpoint as shown to its owner (secret included: they need it to verify)."""
        shown = dataclasses.asdict(self)
        shown["event_types"] = list(self.event_types) if self.event_types is not None else None
        shown["headers"] = dict(self.headers)
        return shown


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def new_secret() -> str:
    """``whsec_`` + base64 of 32 random bytes (Standard Webhooks format)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def check_secret(secret: str) -> str:
    if not secret.startswith(SECRET_PREFIX):
        raise InvalidEndpoint(f"a secret starts with {SECRET_PREFIX!r} followed by base64")
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidEndpoint("the secret after 'whsec_' is not valid base64") from exc
    if len(key) < MIN_SECRET_BYTES:
        raise InvalidEndpoint(
            f"the secret holds {len(key)} bytes; at least {MIN_SECRET_BYTES} random bytes needed"
        )
    return secret


def check_grace(seconds: int) -> int:
    if not 0 <= seconds <= MAX_GRACE_SECONDS:
        raise InvalidEndpoint(f"the grace period is 0 to {MAX_GRACE_SECONDS} seconds (7 days)")
    return seconds


def check_event_types(types: Iterable[str] | None) -> tuple[str, ...] | None:
    """``None`` or ``["*"]`` mean every type; otherwise each must be a published type."""
    if types is None:
        return None
    if isinstance(types, str):
        types = types.split(",")
    cleaned = tuple(dict.fromkeys(t.strip() for t in types if t.strip()))
    if not cleaned or cleaned == ("*",):
        return None
    try:
        return tuple(check_subscribable(t) for t in cleaned)
    except ValueError as exc:
        raise InvalidEndpoint(str(exc)) from exc


def check_url(url: str, settings: Settings, resolver: SyncResolver | None = None) -> str:
    return validate_endpoint_url(
        url,
        allowed_networks=settings.allowed_networks,
        require_https=settings.require_https,
        resolver=resolver,
    )


def check_account(account_id: str) -> str:
    if not _ACCOUNT_ID.fullmatch(account_id):
        raise InvalidEndpoint("an account id is 1-64 letters, digits or underscores, e.g. acct_1")
    return account_id


MAX_RATE_LIMIT = 10_000.0


def check_rate_limit(rate: float | None) -> float | None:
    if rate is not None and not 0 < rate <= MAX_RATE_LIMIT:
        raise InvalidEndpoint(
            f"a rate limit is more than 0 and at most {MAX_RATE_LIMIT:g} per second"
        )
    return rate


def mask(value: str) -> str:
    return "****" + value[-4:] if len(value) >= 16 else "****"


def check_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]] | None) -> Headers:
    """Custom headers as stored, or :class:`InvalidEndpoint` naming the bad one (never its
    value: it may be a credential)."""
    if headers is None:
        return ()
    pairs = list(headers.items() if isinstance(headers, Mapping) else headers)
    if len(pairs) > MAX_HEADERS:
        raise InvalidEndpoint(f"at most {MAX_HEADERS} custom headers")
    seen: set[str] = set()
    checked: list[tuple[str, str]] = []
    for name, value in pairs:
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise InvalidEndpoint(
                f"header name {str(name)[:100]!r} is not a valid HTTP header name (a token)"
            )
        lower = name.lower()
        if lower in RESERVED_HEADERS or lower.startswith(RESERVED_PREFIXES):
            raise InvalidEndpoint(
                f"header {name!r} is set by the pipeline (the request's framing, its signature"
                " and event headers) and may not be overridden"
            )
        if lower in seen:
            raise InvalidEndpoint(f"header {name!r} is given twice")
        seen.add(lower)
        if not isinstance(value, str) or not _HEADER_VALUE.fullmatch(value):
            raise InvalidEndpoint(
                f"header {name!r}: its value may not hold CR, LF or control bytes"
            )
        if len(value) > MAX_HEADER_VALUE:
            raise InvalidEndpoint(
                f"header {name!r}: a value holds at most {MAX_HEADER_VALUE} characters"
            )
        checked.append((name, value))
    return tuple(checked)


def check_filter(source: str | None) -> str | None:
    try:
        return _check_filter(source)
    except FilterError as exc:
        raise InvalidEndpoint(str(exc)) from exc


def check_description(description: str) -> str:
    if len(description) > MAX_DESCRIPTION:
        raise InvalidEndpoint(f"a description holds at most {MAX_DESCRIPTION} characters")
    return description


def new_endpoint(
    settings: Settings,
    *,
    account_id: str,
    url: str,
    event_types: Sequence[str] | None = None,
    secret: str | None = None,
    description: str = "",
    resolver: SyncResolver | None = None,
    listen: bool = False,
    rate_limit: float | None = None,
    ordered: bool = False,
    filter: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Endpoint:
    """A validated new endpoint; raises :class:`InvalidEndpoint` naming the bad field.

    A ``listen`` endpoint's URL is only shown: no worker sends to it, so it is not checked
    against the SSRF guard (it is usually ``http://localhost:...``)."""
    now = _now_ms()
    return Endpoint(
        id=f"ep_{ulid()}",
        account_id=check_account(account_id),
        url=url if listen else check_url(url, settings, resolver),
        listen=listen,
        rate_limit=check_rate_limit(rate_limit),
        ordered=ordered,
        filter=check_filter(filter),
        headers=check_headers(headers),
        event_types=check_event_types(event_types),
        secret=check_secret(secret) if secret is not None else new_secret(),
        description=check_description(description),
        created_at=now,
        updated_at=now,
    )
