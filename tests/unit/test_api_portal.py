"""Portal links on in-memory backends: who may make them, what each scope may do, expiry,
revocation and the audit log. (The SQL store is tested on PostgreSQL in tests/integration.)"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from test_api import ADMIN, make_client, new_account, new_endpoint

from pipeline.portal import TOKEN_PREFIX


@pytest.fixture
def client() -> Iterator[TestClient]:
    with make_client() as client:
        yield client


def portal_link(client: TestClient, key: dict[str, str], **body: object) -> dict[str, object]:
    response = client.post("/v1/portal-links", json=body, headers=key)
    assert response.status_code == 201, response.text
    created: dict[str, object] = response.json()
    return created


def bearer(token: object) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_link_opens_the_dashboard_for_one_account_with_its_token_in_the_fragment(
    client: TestClient,
) -> None:
    _, key = new_account(client)
    link = portal_link(client, key, label="ops@trattoria.example")
    token = link["token"]
    assert isinstance(token, str) and token.startswith(TOKEN_PREFIX)
    assert link["url"] == f"http://testserver/#portal={token}"  # fragment: never sent to a server
    assert link["scope"] == "read" and link["active"] is True
    assert link["created_by"] == "key:" + key["Authorization"].removeprefix("Bearer ")[:11]
    me = client.get("/v1/me", headers=bearer(token)).json()
    assert me["via"] == "portal_link" and me["scope"] == "read" and me["account_name"]
    assert client.get("/v1/me", headers=key).json()["via"] == "api_key"


def test_the_public_url_setting_is_where_links_point() -> None:
    with make_client(public_url="https://hooks.velourcity.example/") as public:
        _, key = new_account(public)
        link = portal_link(public, key)
        assert link["url"] == f"https://hooks.velourcity.example/#portal={link['token']}"


def test_a_read_only_link_reads_but_changes_nothing_nor_reveals_secrets(
    client: TestClient,
) -> None:
    _, key = new_account(client)
    endpoint = new_endpoint(client, key)
    portal = bearer(portal_link(client, key, scope="read")["token"])
    assert client.get("/v1/endpoints", headers=portal).status_code == 200
    assert client.get(f"/v1/endpoints/{endpoint['id']}", headers=portal).status_code == 200
    assert client.get("/v1/deliveries", headers=portal).status_code == 200
    for method, path in [
        ("PATCH", f"/v1/endpoints/{endpoint['id']}"),
        ("DELETE", f"/v1/endpoints/{endpoint['id']}"),
        ("POST", "/v1/endpoints"),
        ("POST", f"/v1/endpoints/{endpoint['id']}/rotate-secret"),
    ]:
        response = client.request(method, path, json={"description": "x"}, headers=portal)
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["error"]["code"] == "read_only"
    for secret in ("secret", "headers"):
        response = client.get(f"/v1/endpoints/{endpoint['id']}/{secret}", headers=portal)
        assert response.status_code == 403 and response.json()["error"]["code"] == "read_only"
    after = client.get(f"/v1/endpoints/{endpoint['id']}", headers=key).json()
    assert after["description"] == endpoint["description"]  # the PATCH did not happen
    assert len(client.get("/v1/endpoints", headers=key).json()["data"]) == 1


def test_a_full_link_changes_endpoints_and_each_change_is_audited(client: TestClient) -> None:
    _, key = new_account(client)
    endpoint = new_endpoint(client, key)
    link = portal_link(client, key, scope="full", label="teammate")
    portal = bearer(link["token"])
    response = client.patch(
        f"/v1/endpoints/{endpoint['id']}", json={"description": "via portal"}, headers=portal
    )
    assert response.status_code == 200, response.text
    assert client.get(f"/v1/endpoints/{endpoint['id']}/secret", headers=portal).status_code == 200
    entries = client.get("/v1/audit-log", headers=key).json()["data"]
    actions = [(e["actor"], e["action"]) for e in reversed(entries)]
    actor = f"portal:{link['id']}"
    assert actions == [
        (link["created_by"], "portal_link.created"),
        (actor, "portal_link.opened"),
        (actor, "request"),
    ]
    assert entries[0]["detail"] == {
        "method": "PATCH",
        "path": f"/v1/endpoints/{endpoint['id']}",
        "status": 200,
    }


def test_no_link_can_make_links_see_the_audit_log_or_reach_another_account(
    client: TestClient,
) -> None:
    _, key = new_account(client, "A")
    _, other_key = new_account(client, "B")
    other_endpoint = new_endpoint(client, other_key)
    portal = bearer(portal_link(client, key, scope="full")["token"])
    for method, path in [
        ("POST", "/v1/portal-links"),
        ("GET", "/v1/portal-links"),
        ("POST", "/v1/portal-links/revoke-all"),
        ("GET", "/v1/audit-log"),
    ]:
        response = client.request(method, path, json={}, headers=portal)
        assert response.status_code == 403, (method, path)
        assert response.json()["error"]["code"] == "api_key_required"
    assert client.get(f"/v1/endpoints/{other_endpoint['id']}", headers=portal).status_code == 404
    assert client.post("/v1/accounts", json={"name": "x"}, headers=portal).status_code == 401


def test_revoked_and_expired_links_stop_working_at_once(client: TestClient) -> None:
    _, key = new_account(client)
    first, second = portal_link(client, key), portal_link(client, key)
    response = client.delete(f"/v1/portal-links/{first['id']}", headers=key)
    assert response.status_code == 200 and response.json()["active"] is False
    refused = client.get("/v1/endpoints", headers=bearer(first["token"]))
    assert refused.status_code == 401
    assert "expired or was revoked" in refused.json()["error"]["message"]
    assert client.get("/v1/endpoints", headers=bearer(second["token"])).status_code == 200
    assert client.post("/v1/portal-links/revoke-all", headers=key).json() == {"revoked": 1}
    assert client.get("/v1/endpoints", headers=bearer(second["token"])).status_code == 401
    # expiry: the link's own time, moved into the past
    third = portal_link(client, key)
    portal = client.app.state.backends.portal  # type: ignore[attr-defined]
    stored = portal.stored[third["id"]]
    portal.stored[third["id"]] = dataclasses.replace(stored, expires_at=stored.created_at - 1)
    assert client.get("/v1/endpoints", headers=bearer(third["token"])).status_code == 401
    listed = client.get("/v1/portal-links", headers=key).json()["data"]
    assert [(link["id"], link["active"]) for link in listed] == [
        (third["id"], False),
        (second["id"], False),
        (first["id"], False),
    ]


def test_operators_make_and_revoke_links_for_any_account(client: TestClient) -> None:
    account_id, _ = new_account(client)
    response = client.post(
        f"/v1/accounts/{account_id}/portal-link", json={"scope": "full"}, headers=ADMIN
    )
    assert response.status_code == 201, response.text
    link = response.json()
    assert link["created_by"] == "admin" and link["account_id"] == account_id
    assert client.get("/v1/me", headers=bearer(link["token"])).json()["scope"] == "full"
    assert client.post("/v1/accounts/nope/portal-link", json={}, headers=ADMIN).status_code == 404
    revoke = f"/v1/accounts/{account_id}/portal-links/revoke-all"
    assert client.post(revoke, headers=ADMIN).json() == {"revoked": 1}
    audit = client.get(f"/v1/accounts/{account_id}/audit-log", headers=ADMIN).json()["data"]
    assert [e["action"] for e in audit][:2] == ["portal_link.revoked_all", "portal_link.opened"]


def test_bad_requests_get_clear_errors(client: TestClient) -> None:
    _, key = new_account(client)
    for body, field in [
        ({"scope": "admin"}, "scope"),
        ({"expires_in": 5}, "expires_in"),
        ({"expires_in": 10**9}, "expires_in"),
        ({"label": "x" * 201}, "label"),
        ({"scopes": "read"}, "scopes"),
    ]:
        response = client.post("/v1/portal-links", json=body, headers=key)
        assert response.status_code == 422, body
        assert field in response.text
    bogus = bearer(TOKEN_PREFIX + "not-a-real-token")
    assert client.get("/v1/endpoints", headers=bogus).status_code == 401
