"""``velourcity endpoints``: register and manage partner endpoints (subscriptions).

They go through the same PostgreSQL store as the API (:mod:`pipeline.controlplane`), and a
change is on the compacted topic, where the workers see it, before the command returns (it
relays the outbox itself when no relay runs: :func:`pipeline.controlplane.relay.flush_outbox`).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import orjson
import typer

from pipeline.endpoints.model import (
    DEFAULT_GRACE_SECONDS,
    Endpoint,
    check_description,
    check_event_types,
    check_filter,
    check_grace,
    check_headers,
    check_rate_limit,
    check_secret,
    check_url,
    new_endpoint,
)
from pipeline.exceptions import InvalidEndpoint
from pipeline.settings import Settings, load_settings

if TYPE_CHECKING:
    from pipeline.controlplane import ControlPlane, VersionedEndpoint

T = TypeVar("T")

app = typer.Typer(help="Partner endpoints: where webhooks go.", no_args_is_help=True)

EventsOption = Annotated[
    str | None,
    typer.Option("--events", help="Comma-separated event types (default: all)."),
]
OrderedOption = Annotated[
    bool | None,
    typer.Option(
        "--ordered/--no-ordered",
        help="Strict per-order ordering (an order's events wait for the earlier ones).",
    ),
]
FilterOption = Annotated[
    str | None,
    typer.Option(
        "--filter",
        help='Content filter, e.g. \'data.restaurant_id in ["r_1"]\' (update: "" removes it).',
    ),
]
HeaderOption = Annotated[
    list[str] | None,
    typer.Option(
        "--header",
        help="A custom header sent with every webhook, 'Name: value' (repeat it; update:"
        " replaces them all).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _headers(given: list[str] | None) -> tuple[tuple[str, str], ...] | None:
    if given is None:
        return None
    pairs = []
    for header in given:
        name, colon, value = header.partition(":")
        if not colon:
            raise InvalidEndpoint(f"--header takes 'Name: value', not {name[:100]!r}")
        pairs.append((name.strip(), value.strip()))
    return check_headers(pairs)


RateOption = Annotated[
    float | None,
    typer.Option("--rate-limit", help="Attempts per second at most (update: 0 lifts it)."),
]


def _split(events: str | None) -> list[str] | None:
    return events.split(",") if events is not None else None


def _show(endpoint: Endpoint, as_json: bool) -> None:
    if as_json:
        typer.echo(orjson.dumps(endpoint.public()).decode())
        return
    types = ",".join(endpoint.event_types) if endpoint.event_types else "*"
    state = (
        "enabled" if endpoint.enabled else f"disabled ({endpoint.disabled_reason or 'by owner'})"
    )
    ordered = "  ordered" if endpoint.ordered else ""
    shown_filter = f"  filter={endpoint.filter}" if endpoint.filter else ""
    if endpoint.headers:
        shown_filter += "  headers=" + ",".join(endpoint.masked_headers())
    typer.echo(
        f"{endpoint.id}  {endpoint.account_id}  {endpoint.url}  events={types}  {state}{ordered}"
        f"{shown_filter}"
    )


def _store(settings: Settings, use: Callable[[ControlPlane], Awaitable[T]]) -> T:
    """Run ``use`` with the control-plane store, then see its changes onto the topics."""
    from pipeline.controlplane.commands import on_store  # psycopg: only for these commands

    result, relayed = on_store(settings, use)
    if not relayed:
        typer.echo("warning: saved, but not yet on the endpoints topic (no relay?)", err=True)
    return result


def _existing(settings: Settings, endpoint_id: str) -> Endpoint:
    async def read(store: ControlPlane) -> VersionedEndpoint | None:
        return await store.endpoint(endpoint_id)

    found = _store(settings, read)
    if found is None:
        raise InvalidEndpoint(f"no endpoint {endpoint_id}")
    return found.endpoint


def _change(settings: Settings, endpoint_id: str, changes: dict[str, Any]) -> Endpoint:
    endpoint = _existing(settings, endpoint_id)

    async def change(store: ControlPlane) -> VersionedEndpoint | None:
        return await store.update_endpoint(endpoint_id, endpoint.account_id, changes)

    changed = _store(settings, change)
    if changed is None:
        raise InvalidEndpoint(f"no endpoint {endpoint_id}")
    return changed.endpoint


@app.command()
def create(
    account: Annotated[str, typer.Option("--account", help="The partner account.")],
    url: Annotated[str, typer.Option("--url", help="https URL that receives the POSTs.")],
    events: EventsOption = None,
    secret: Annotated[str | None, typer.Option(help="whsec_... (default: generated).")] = None,
    description: Annotated[str, typer.Option(help="Free text.")] = "",
    rate_limit: RateOption = None,
    ordered: OrderedOption = None,
    content_filter: FilterOption = None,
    header: HeaderOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register an endpoint; prints it with its id and signing secret."""
    settings = load_settings()
    endpoint = new_endpoint(
        settings,
        account_id=account,
        url=url,
        event_types=_split(events),
        secret=secret,
        description=description,
        rate_limit=rate_limit,
        ordered=bool(ordered),
        filter=content_filter,
        headers=dict(_headers(header) or ()),
    )
    _store(settings, lambda store: store.create_endpoint(endpoint))
    _show(endpoint, as_json)
    if not as_json:
        typer.echo(f"secret: {endpoint.secret}")


@app.command("list")
def list_(
    account: Annotated[str | None, typer.Option("--account", help="Only this account's.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List endpoints."""

    from pipeline.controlplane.commands import endpoints_of

    for endpoint in endpoints_of(load_settings(), account):
        _show(endpoint, as_json)


@app.command()
def update(
    endpoint_id: Annotated[str, typer.Argument(help="ep_...")],
    url: Annotated[str | None, typer.Option(help="New URL.")] = None,
    events: EventsOption = None,
    secret: Annotated[str | None, typer.Option(help="New secret (whsec_...).")] = None,
    description: Annotated[str | None, typer.Option(help="New description.")] = None,
    rate_limit: RateOption = None,
    ordered: OrderedOption = None,
    content_filter: FilterOption = None,
    header: HeaderOption = None,
    clear_headers: Annotated[
        bool, typer.Option("--clear-headers", help="Remove every custom header.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Change an endpoint's URL, event types, secret, description, rate limit, ordering,
    content filter or custom headers."""
    settings = load_settings()
    changes: dict[str, Any] = {}
    if url is not None:
        changes["url"] = check_url(url, settings)
    if events is not None:
        changes["event_types"] = check_event_types(_split(events))
    if secret is not None:
        changes["secret"] = check_secret(secret)
    if description is not None:
        changes["description"] = check_description(description)
    if rate_limit is not None:
        changes["rate_limit"] = check_rate_limit(rate_limit or None)
    if ordered is not None:
        changes["ordered"] = ordered
    if content_filter is not None:
        changes["filter"] = check_filter(content_filter)  # "" removes it
    if clear_headers:
        changes["headers"] = ()
    elif header is not None:
        changes["headers"] = _headers(header)
    _show(_change(settings, endpoint_id, changes), as_json)


@app.command()
def disable(endpoint_id: Annotated[str, typer.Argument(help="ep_...")]) -> None:
    """Stop sending to an endpoint (deliveries go to the dead-letter topic)."""
    changes = {"enabled": False, "disabled_reason": "disabled by its owner"}
    _show(_change(load_settings(), endpoint_id, changes), False)


@app.command()
def enable(endpoint_id: Annotated[str, typer.Argument(help="ep_...")]) -> None:
    """Send to an endpoint again."""
    changes = {"enabled": True, "disabled_reason": None}
    _show(_change(load_settings(), endpoint_id, changes), False)


@app.command()
def delete(endpoint_id: Annotated[str, typer.Argument(help="ep_...")]) -> None:
    """Delete an endpoint (a tombstone follows on the compacted topic)."""
    settings = load_settings()
    endpoint = _existing(settings, endpoint_id)
    _store(settings, lambda store: store.delete_endpoint(endpoint_id, endpoint.account_id))
    typer.echo(f"deleted {endpoint_id}")


_DURATION = re.compile(r"(\d+)([smhd]?)")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _seconds(text: str) -> int:
    """``--grace`` as seconds: ``86400``, ``90s``, ``30m``, ``24h`` or ``7d``."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise typer.BadParameter(
            "seconds, or a number with s/m/h/d, e.g. 24h", param_hint="--grace"
        )
    return int(match[1]) * _UNIT[match[2]]


def _iso(ms: int) -> str:
    return (
        datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )


@app.command("rotate-secret")
def rotate_secret(
    endpoint_id: Annotated[str, typer.Argument(help="ep_...")],
    grace: Annotated[
        str,
        typer.Option(
            help="How long the old secret keeps signing: seconds, or 30m, 24h, 7d; 0: stop now."
        ),
    ] = str(DEFAULT_GRACE_SECONDS),
    as_json: JsonOption = False,
) -> None:
    """Give an endpoint a new signing secret and print it; the old one signs beside it until
    the grace period ends."""
    seconds = check_grace(_seconds(grace))  # before any network call
    settings = load_settings()
    endpoint = _existing(settings, endpoint_id)

    async def rotate(store: ControlPlane) -> VersionedEndpoint | None:
        return await store.rotate_secret(endpoint_id, endpoint.account_id, seconds)

    found = _store(settings, rotate)
    if found is None:
        raise InvalidEndpoint(f"no endpoint {endpoint_id}")
    rotated = found.endpoint
    expires = rotated.previous_secrets[0][1] if rotated.previous_secrets else None
    when = None if expires is None else _iso(expires)
    if as_json:
        shown = {"id": rotated.id, "secret": rotated.secret, "previous_secret_expires_at": when}
        typer.echo(orjson.dumps(shown).decode())
        return
    typer.echo(f"secret: {rotated.secret}")
    typer.echo(f"the old secret signs until {when}" if when else "the old secret no longer signs")
