"""Portal links on the real stack: the API on Kafka with its links and audit log in PostgreSQL.
Expiry is the database's clock; a link opened by two requests at once is audited once."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pipeline.api import create_api
from pipeline.db import async_pool, connect, migrate
from pipeline.portal import PortalLinks
from pipeline.settings import Settings
from pipeline.topics import create_topics

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

ADMIN = {"Authorization": "Bearer admin-secret"}
URL = "http://127.0.0.1:9/webhooks"  # allowed by the test settings' VELOURCITY_ALLOWED_NETWORKS


@pytest.fixture
def stack_settings(settings_factory: Callable[..., Settings]) -> Settings:
    settings = settings_factory(admin_token="admin-secret")
    create_topics(settings)
    migrate(settings)
    return settings


@pytest.fixture
def client(stack_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_api(stack_settings, run_sink=False)) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def audit_rows(settings: Settings) -> list[tuple[str, str]]:
    with connect(settings) as conn:
        rows = conn.execute("SELECT actor, action FROM audit_log ORDER BY entry_id").fetchall()
    return [(actor, action) for actor, action in rows]


def test_a_link_signs_in_for_one_account_until_revoked_or_expired(
    client: TestClient, stack_settings: Settings
) -> None:
    response = client.post("/v1/accounts", json={"name": "Trattoria"}, headers=ADMIN)
    key = bearer(response.json()["api_key"])
    endpoint = client.post("/v1/endpoints", json={"url": URL}, headers=key).json()

    full = client.post("/v1/portal-links", json={"scope": "full", "label": "ana"}, headers=key)
    assert full.status_code == 201, full.text
    link, portal = full.json(), bearer(full.json()["token"])
    path = f"/v1/endpoints/{endpoint['id']}"
    assert client.get(path, headers=portal).json()["id"] == endpoint["id"]
    changed = client.patch(path, json={"description": "from the portal"}, headers=portal)
    assert changed.status_code == 200, changed.text
    actor = f"portal:{link['id']}"
    assert audit_rows(stack_settings) == [
        (link["created_by"], "portal_link.created"),
        (actor, "portal_link.opened"),
        (actor, "request"),
    ]
    # the token is kept only as its SHA-256
    with connect(stack_settings) as conn:
        stored = conn.execute("SELECT token_sha256 FROM portal_links").fetchone()
    assert stored is not None and link["token"].encode() not in bytes(stored[0])

    revoked = client.delete(f"/v1/portal-links/{link['id']}", headers=key)
    assert revoked.status_code == 200 and revoked.json()["active"] is False
    assert client.get(path, headers=portal).status_code == 401

    read = client.post("/v1/portal-links", json={"expires_in": 3600}, headers=key).json()
    assert client.get(path, headers=bearer(read["token"])).status_code == 200
    with connect(stack_settings) as conn:  # the database's clock decides: move it past expiry
        conn.execute(
            "UPDATE portal_links SET expires_at = now() - interval '1 second' WHERE link_id = %s",
            (read["id"],),
        )
        conn.commit()
    assert client.get(path, headers=bearer(read["token"])).status_code == 401
    listed = client.get("/v1/portal-links", headers=key).json()["data"]
    assert [(x["id"], x["active"]) for x in listed] == [(read["id"], False), (link["id"], False)]


def test_a_link_opened_by_many_requests_at_once_is_audited_once(stack_settings: Settings) -> None:
    async def scenario() -> list[bool]:
        async with async_pool(stack_settings) as pool:
            store = PortalLinks(pool)
            link, token = await store.create(
                "acc_1", scope="read", ttl_seconds=900, label="", created_by="admin"
            )
            found = await asyncio.gather(*(store.authenticate(token) for _ in range(8)))
            assert await store.authenticate("vpl_wrong") is None
            return [f is not None and f.id == link.id for f in found]

    assert asyncio.run(scenario()) == [True] * 8
    actions = [action for _, action in audit_rows(stack_settings)]
    assert actions == ["portal_link.created", "portal_link.opened"]


def velourcity(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = settings.as_environment()
    return subprocess.run(
        [str(Path(sys.executable).with_name("velourcity")), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def test_operators_make_list_and_revoke_links_from_the_command_line(
    client: TestClient, stack_settings: Settings
) -> None:
    account_id = client.post("/v1/accounts", json={"name": "Roma"}, headers=ADMIN).json()["id"]
    made = velourcity(
        stack_settings,
        "portal-links",
        "create",
        account_id,
        "--scope",
        "full",
        "--base-url",
        "https://hooks.example",
        "--label",
        "night shift",
    )
    assert made.returncode == 0, made.stderr
    url = made.stdout.splitlines()[0]
    assert url.startswith("https://hooks.example/#portal=vpl_")
    token = url.split("=", 1)[1]
    assert client.get("/v1/me", headers=bearer(token)).json()["scope"] == "full"
    listed = velourcity(stack_settings, "portal-links", "list", account_id)
    assert listed.returncode == 0 and "active" in listed.stdout and "night shift" in listed.stdout
    link_id = listed.stdout.split()[0]
    revoked = velourcity(stack_settings, "portal-links", "revoke", account_id, link_id)
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    assert client.get("/v1/me", headers=bearer(token)).status_code == 401
    unknown = velourcity(
        stack_settings, "portal-links", "create", "acct_nope", "--base-url", "https://x"
    )
    assert unknown.returncode == 2 and "no account acct_nope" in unknown.stderr
    assert ("cli", "portal_link.revoked") in audit_rows(stack_settings)
    wrong_scope = velourcity(
        stack_settings, "portal-links", "create", account_id, "--scope", "admin"
    )
    assert wrong_scope.returncode == 2
    assert "Invalid value for '--scope'" in wrong_scope.stderr and "'admin'" in wrong_scope.stderr
