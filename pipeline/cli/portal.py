"""``velourcity portal-links``: operators make, list and revoke partner portal links.

The same store as the API's routes (PostgreSQL); what is done here is in the account's audit
log as done by ``cli``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, TypeVar

import orjson
import typer

from pipeline.portal.model import (
    DEFAULT_TTL_SECONDS,
    MAX_TTL_SECONDS,
    MIN_TTL_SECONDS,
    PortalLink,
    Scope,
)
from pipeline.settings import Settings, load_settings

app = typer.Typer(
    help="Partner portal links: short-lived dashboard sign-ins for one account.",
    no_args_is_help=True,
)
ACTOR = "cli"
T = TypeVar("T")
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _run(settings: Settings, work: Callable[..., Awaitable[T]]) -> T:
    from pipeline.db import async_pool  # psycopg: imported only for database commands
    from pipeline.portal import PortalLinks

    async def run() -> T:
        async with async_pool(settings) as pool:
            return await work(PortalLinks(pool))

    return asyncio.run(run())


def _existing_account(settings: Settings, account_id: str) -> None:
    from pipeline.controlplane import ControlPlane
    from pipeline.db import async_pool

    async def find() -> bool:
        async with async_pool(settings) as pool:
            return await ControlPlane(pool).account(account_id) is not None

    if not asyncio.run(find()):
        raise typer.BadParameter(f"no account {account_id}", param_hint="ACCOUNT_ID")


def _time(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


def _line(link: PortalLink) -> str:
    now = int(datetime.now(UTC).timestamp() * 1000)
    state = "active" if link.active(now) else ("revoked" if link.revoked_at else "expired")
    return (
        f"{link.id}  {link.scope:<4}  {state:<7}  expires {_time(link.expires_at)}"
        f"  last used {_time(link.last_used_at)}  by {link.created_by}  {link.label}"
    )


@app.command("create")
def create(
    account_id: str,
    scope: Annotated[Scope, typer.Option(help="read: look only; full: also change.")] = "read",
    expires_in: Annotated[
        int,
        typer.Option(min=MIN_TTL_SECONDS, max=MAX_TTL_SECONDS, help="Seconds the link works for."),
    ] = DEFAULT_TTL_SECONDS,
    label: Annotated[str, typer.Option(help="Who it is for (shown in the audit log).")] = "",
    base_url: Annotated[
        str | None,
        typer.Option(help="The dashboard's address (default: VELOURCITY_PUBLIC_URL)."),
    ] = None,
    json: JsonOption = False,
) -> None:
    """Make a link and print its URL (the token is shown this once)."""
    settings = load_settings()
    root = base_url or (str(settings.public_url) if settings.public_url else None)
    if root is None:
        raise typer.BadParameter("set VELOURCITY_PUBLIC_URL or pass it", param_hint="--base-url")
    _existing_account(settings, account_id)
    link, token = _run(
        settings,
        lambda store: store.create(
            account_id,
            scope=scope,
            ttl_seconds=expires_in,
            label=label[:200],
            created_by=ACTOR,
        ),
    )
    url = f"{root.rstrip('/')}/#portal={token}"
    if json:
        typer.echo(orjson.dumps({"id": link.id, "url": url, "expires_at": link.expires_at}))
    else:
        typer.echo(f"{url}\n{_line(link)}")


@app.command("list")
def list_links(account_id: str, limit: int = 50) -> None:
    """The account's links, newest first."""
    for link in _run(load_settings(), lambda store: store.links(account_id, limit)):
        typer.echo(_line(link))


@app.command("revoke")
def revoke(account_id: str, link_id: str) -> None:
    """Revoke one link at once."""
    link = _run(load_settings(), lambda store: store.revoke(account_id, link_id, ACTOR))
    if link is None:
        raise typer.BadParameter(f"no portal link {link_id} in account {account_id}")
    typer.echo(_line(link))


@app.command("revoke-all")
def revoke_all(account_id: str) -> None:
    """Revoke every active link of the account."""
    count = _run(load_settings(), lambda store: store.revoke_all(account_id, ACTOR))
    typer.echo(f"revoked {count} portal link(s)")
