"""Request and response bodies. Requests refuse unknown fields, so a typo is an error, not a
silently ignored setting."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field

from pipeline.accounts import Account, ApiKey
from pipeline.endpoints import Endpoint
from pipeline.endpoints.filters import MAX_LENGTH as MAX_FILTER_LENGTH
from pipeline.endpoints.model import (
    DEFAULT_GRACE_SECONDS,
    MAX_DESCRIPTION,
    MAX_GRACE_SECONDS,
    MAX_RATE_LIMIT,
)


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def _time(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


class AccountCreate(Request):
    name: str = Field(min_length=1, max_length=200, examples=["Trattoria Roma"])


class KeyOut(BaseModel):
    prefix: str = Field(description="The key's first characters: names it, e.g. to revoke it.")
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey) -> KeyOut:
        revoked = None if key.revoked_at is None else _time(key.revoked_at)
        return cls(prefix=key.prefix, created_at=_time(key.created_at), revoked_at=revoked)


class KeyCreated(KeyOut):
    api_key: str = Field(description="The key itself, shown this once only.")


class AccountCreated(BaseModel):
    id: str
    name: str
    created_at: datetime
    api_key: str = Field(description="The account's first API key, shown this once only.")
    key_prefix: str

    @classmethod
    def of(cls, account: Account, api_key: str) -> AccountCreated:
        return cls(
            id=account.id,
            name=account.name,
            created_at=_time(account.created_at),
            api_key=api_key,
            key_prefix=account.keys[-1].prefix,
        )


EventTypes = list[str] | None
_EVENT_TYPES = Field(
    default=None,
    description='Event types to receive; omitted, null or ["*"]: every type.',
    examples=[["order.created", "order.delivered"]],
)


_RATE_LIMIT = Field(
    default=None,
    gt=0,
    le=MAX_RATE_LIMIT,
    description="Attempts per second at most, across all workers; null: no limit.",
    examples=[50],
)


_ORDERED = Field(
    default=False,
    description=(
        "Strict per-order ordering: a later event of an order is not sent before an earlier "
        "one was delivered or dead-lettered (only that order waits). false: best effort."
    ),
)


_FILTER = Field(
    default=None,
    max_length=MAX_FILTER_LENGTH,
    description=(
        "A content filter over the webhook body: only events it matches are sent; null: all."
        ' Paths (data.restaurant_id, data.items[0].sku), values ("text", 5, true, null,'
        " lists), ==, !=, <, <=, >, >=, in, and, or, not, parentheses."
    ),
    examples=['data.restaurant_id in ["r_1", "r_2"] and data.total > 20'],
)


_HEADERS = Field(
    default=None,
    description=(
        "Custom headers sent with every webhook (e.g. a token for your gateway), stored like"
        " the secret and shown masked; not Host, Content-Type, Content-Length, User-Agent,"
        " hop-by-hop headers, webhook-* or X-Velourcity-*."
    ),
    examples=[{"X-Partner-Token": "tok_live_8f3a..."}],
)


class EndpointCreate(Request):
    url: str = Field(max_length=2048, examples=["https://partner.example/webhooks"])
    event_types: EventTypes = _EVENT_TYPES
    description: str = Field(default="", max_length=MAX_DESCRIPTION)
    rate_limit: float | None = _RATE_LIMIT
    ordered: bool = _ORDERED
    filter: str | None = _FILTER
    headers: dict[str, str] | None = _HEADERS


class EndpointReplace(EndpointCreate):
    """The endpoint's whole configuration: a field left out takes its default (as on create),
    it does not stay as it was. Its secret, state (enable/disable) and id are not part of it."""


class EndpointUpdate(Request):
    """Only the fields given change; ``event_types: null`` means every type."""

    url: str | None = Field(default=None, max_length=2048)
    event_types: EventTypes = _EVENT_TYPES
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION)
    rate_limit: float | None = _RATE_LIMIT
    ordered: bool | None = Field(default=None, description="See create; null: unchanged.")
    filter: str | None = Field(
        default=None, max_length=MAX_FILTER_LENGTH, description="See create; null: no filter."
    )
    headers: dict[str, str] | None = Field(
        default=None, description="See create: replaces them all; null or {}: none."
    )


class EndpointOut(BaseModel):
    id: str
    url: str
    event_types: list[str] | None
    description: str
    enabled: bool
    disabled_reason: str | None
    rate_limit: float | None
    ordered: bool
    filter: str | None
    headers: dict[str, str] = Field(
        description="Custom headers, values masked (GET .../headers shows them)."
    )
    created_at: datetime
    updated_at: datetime

    @classmethod
    def fields_of(cls, endpoint: Endpoint) -> dict[str, object]:
        return {
            "id": endpoint.id,
            "url": endpoint.url,
            "event_types": list(endpoint.event_types) if endpoint.event_types else None,
            "description": endpoint.description,
            "enabled": endpoint.enabled,
            "disabled_reason": endpoint.disabled_reason,
            "rate_limit": endpoint.rate_limit,
            "ordered": endpoint.ordered,
            "filter": endpoint.filter,
            "headers": endpoint.masked_headers(),
            "created_at": _time(endpoint.created_at),
            "updated_at": _time(endpoint.updated_at),
        }

    @classmethod
    def of(cls, endpoint: Endpoint) -> EndpointOut:
        return cls.model_validate(cls.fields_of(endpoint))


class EndpointCreated(EndpointOut):
    secret: str = Field(description="Signing secret (whsec_...); also at GET .../secret.")

    @classmethod
    def of(cls, endpoint: Endpoint) -> EndpointCreated:
        return cls.model_validate(cls.fields_of(endpoint) | {"secret": endpoint.secret})


class EndpointHeaders(BaseModel):
    id: str
    headers: dict[str, str] = Field(description="The custom headers, values unmasked.")


class EndpointSecret(BaseModel):
    id: str
    secret: str


class SecretRotation(Request):
    grace_seconds: int = Field(
        default=DEFAULT_GRACE_SECONDS,
        ge=0,
        le=MAX_GRACE_SECONDS,
        description="How long the replaced secret keeps signing beside the new one; 0: stop now.",
    )


class SecretRotated(BaseModel):
    id: str
    secret: str = Field(description="The new signing secret (whsec_...); it signs from now on.")
    previous_secret_expires_at: datetime | None = Field(
        description="When the replaced secret stops signing; null: it already has."
    )

    @classmethod
    def of(cls, endpoint: Endpoint) -> SecretRotated:
        """From the rotated endpoint: its newest previous secret is the one just replaced."""
        previous = endpoint.previous_secrets[0][1] if endpoint.previous_secrets else None
        expires = None if previous is None else _time(previous)
        return cls(id=endpoint.id, secret=endpoint.secret, previous_secret_expires_at=expires)


class EndpointPage(BaseModel):
    data: list[EndpointOut]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null: done.")
