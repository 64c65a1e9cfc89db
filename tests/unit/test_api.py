"""The REST API against in-memory backends: auth, isolation between accounts, errors as JSON."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from api_fakes import InMemoryControlPlane, in_memory_backends
from fastapi.testclient import TestClient

from pipeline.accounts import Account
from pipeline.api import create_api
from pipeline.controlplane import VersionedAccount
from pipeline.exceptions import DatabaseUnavailable
from pipeline.settings import Settings

ADMIN = {"Authorization": "Bearer admin-secret"}
URL = "https://hooks.example.com/webhooks"


class PublicResolver:
    """Registration-time DNS without the network: known names are public, others don't resolve."""

    def resolve_sync(self, host: str, port: int) -> list[str]:
        if host.endswith("example.com"):
            return ["93.184.216.34"]
        raise OSError("name does not resolve")


def make_client(control: InMemoryControlPlane | None = None, **settings: Any) -> TestClient:
    app = create_api(
        Settings(**({"admin_token": "admin-secret"} | settings)),
        backends=in_memory_backends(control),
        resolver=PublicResolver(),
    )
    return TestClient(app)


@pytest.fixture
def client() -> Iterator[TestClient]:
    with make_client() as client:
        yield client


def new_account(client: TestClient, name: str = "Trattoria") -> tuple[str, dict[str, str]]:
    response = client.post("/v1/accounts", json={"name": name}, headers=ADMIN)
    assert response.status_code == 201, response.text
    body = response.json()
    return body["id"], {"Authorization": f"Bearer {body['api_key']}"}


def new_endpoint(client: TestClient, key: dict[str, str], **fields: Any) -> dict[str, Any]:
    response = client.post("/v1/endpoints", json={"url": URL} | fields, headers=key)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def assert_error(response: Any, status: int, code: str, field: str | None = None) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    assert error["field"] == field


# Accounts and keys ---------------------------------------------------------------------------


def test_an_account_is_created_with_a_key_shown_once(client: TestClient) -> None:
    response = client.post("/v1/accounts", json={"name": "Trattoria"}, headers=ADMIN)
    assert response.status_code == 201 and response.headers["etag"] == '"1"'
    body = response.json()
    assert body["id"].startswith("acct_") and body["api_key"].startswith(body["key_prefix"])
    key = {"Authorization": f"Bearer {body['api_key']}"}
    assert client.get("/v1/endpoints", headers=key).json() == {"data": [], "next_cursor": None}


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"X": "y"}])
def test_account_routes_need_the_admin_token(client: TestClient, headers: dict[str, str]) -> None:
    response = client.post("/v1/accounts", json={"name": "x"}, headers=headers)
    assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"


def test_without_an_admin_token_configured_accounts_are_off() -> None:
    with make_client(admin_token=None) as client:
        response = client.post("/v1/accounts", json={"name": "x"}, headers=ADMIN)
    assert_error(response, 503, "admin_disabled")
    assert "VELOURCITY_ADMIN_TOKEN" in response.json()["error"]["message"]


def test_an_api_key_is_no_admin_token(client: TestClient) -> None:
    _, key = new_account(client)
    assert_error(client.post("/v1/accounts", json={"name": "x"}, headers=key), 401, "unauthorized")


def test_keys_are_added_and_revoked(client: TestClient) -> None:
    account_id, first = new_account(client)
    response = client.post(f"/v1/accounts/{account_id}/keys", headers=ADMIN)
    assert response.status_code == 201 and response.headers["etag"] == '"2"'
    created = response.json()
    second = {"Authorization": f"Bearer {created['api_key']}"}
    assert client.get("/v1/endpoints", headers=second).status_code == 200

    revoked = client.delete(f"/v1/accounts/{account_id}/keys/{created['prefix']}", headers=ADMIN)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert_error(client.get("/v1/endpoints", headers=second), 401, "unauthorized")
    assert client.get("/v1/endpoints", headers=first).status_code == 200


def test_unknown_accounts_and_keys_answer_404(client: TestClient) -> None:
    account_id, _ = new_account(client)
    assert_error(client.post("/v1/accounts/acct_nope/keys", headers=ADMIN), 404, "not_found")
    response = client.delete(f"/v1/accounts/{account_id}/keys/vk_nope", headers=ADMIN)
    assert_error(response, 404, "not_found")


# Endpoints -----------------------------------------------------------------------------------


def test_an_endpoint_is_created_and_its_secret_shown(client: TestClient) -> None:
    _, key = new_account(client)
    created = new_endpoint(client, key, event_types=["order.created"], description="kitchen")
    assert created["id"].startswith("ep_") and created["secret"].startswith("whsec_")
    assert created["event_types"] == ["order.created"] and created["enabled"] is True
    shown = client.get(f"/v1/endpoints/{created['id']}", headers=key).json()
    assert "secret" not in shown and shown["description"] == "kitchen"
    secret = client.get(f"/v1/endpoints/{created['id']}/secret", headers=key).json()
    assert secret == {"id": created["id"], "secret": created["secret"]}


def test_omitted_event_types_mean_every_type(client: TestClient) -> None:
    _, key = new_account(client)
    assert new_endpoint(client, key)["event_types"] is None


def test_an_endpoint_is_changed_disabled_enabled_and_deleted(client: TestClient) -> None:
    _, key = new_account(client)
    path = f"/v1/endpoints/{new_endpoint(client, key)['id']}"
    patched = client.patch(path, json={"event_types": ["payment.completed"]}, headers=key)
    assert patched.status_code == 200 and patched.json()["event_types"] == ["payment.completed"]
    patched = client.patch(path, json={"event_types": None, "description": "all"}, headers=key)
    assert patched.json()["event_types"] is None and patched.json()["description"] == "all"
    disabled = client.post(f"{path}/disable", headers=key).json()
    assert disabled["enabled"] is False and disabled["disabled_reason"]
    enabled = client.post(f"{path}/enable", headers=key).json()
    assert enabled["enabled"] is True and enabled["disabled_reason"] is None
    assert client.delete(path, headers=key).status_code == 204
    assert_error(client.get(path, headers=key), 404, "not_found")


def test_a_content_filter_is_set_shown_changed_and_removed(client: TestClient) -> None:
    _, key = new_account(client)
    content = 'data.restaurant_id in ["r_1", "r_2"]'
    created = new_endpoint(client, key, filter=f"  {content} ")
    assert created["filter"] == content  # stored stripped
    path = f"/v1/endpoints/{created['id']}"
    assert client.get(path, headers=key).json()["filter"] == content
    bad = client.patch(path, json={"filter": "data.total >> 5"}, headers=key)
    assert_error(bad, 422, "invalid_field", "filter")
    assert "column 13" in bad.json()["error"]["message"]  # points at the offending part
    patched = client.patch(path, json={"filter": "data.total > 20"}, headers=key)
    assert patched.status_code == 200 and patched.json()["filter"] == "data.total > 20"
    patched = client.patch(path, json={"description": "kept"}, headers=key)
    assert patched.json()["filter"] == "data.total > 20"  # untouched when not given
    removed = client.patch(path, json={"filter": None}, headers=key)
    assert removed.status_code == 200 and removed.json()["filter"] is None


def test_custom_headers_are_shown_masked_and_revealed_to_their_owner(client: TestClient) -> None:
    _, key = new_account(client)
    token = "tok_live_0123456789abcdef"
    created = new_endpoint(client, key, headers={"X-Partner-Token": token})
    assert created["headers"] == {"X-Partner-Token": "****cdef"}
    path = f"/v1/endpoints/{created['id']}"
    assert token not in client.get(path, headers=key).text
    assert token not in client.get("/v1/endpoints", headers=key).text
    revealed = client.get(f"{path}/headers", headers=key).json()
    assert revealed == {"id": created["id"], "headers": {"X-Partner-Token": token}}
    _, other = new_account(client, "Someone else")
    assert_error(client.get(f"{path}/headers", headers=other), 404, "not_found")
    refused = client.patch(path, json={"headers": {"webhook-id": "forged"}}, headers=key)
    assert_error(refused, 422, "invalid_field", "headers")
    patched = client.patch(path, json={"description": "kept"}, headers=key).json()
    assert patched["headers"] == {"X-Partner-Token": "****cdef"}  # untouched when not given
    replaced = client.patch(path, json={"headers": {"X-Region": "eu"}}, headers=key).json()
    assert replaced["headers"] == {"X-Region": "****"}
    removed = client.patch(path, json={"headers": None}, headers=key).json()
    assert removed["headers"] == {}


def test_every_answer_carries_the_version_as_etag(client: TestClient) -> None:
    _, key = new_account(client)
    created = client.post("/v1/endpoints", json={"url": URL}, headers=key)
    assert created.headers["etag"] == '"1"'
    path = f"/v1/endpoints/{created.json()['id']}"
    assert client.get(path, headers=key).headers["etag"] == '"1"'
    assert client.patch(path, json={"description": "a"}, headers=key).headers["etag"] == '"2"'
    assert client.post(f"{path}/disable", headers=key).headers["etag"] == '"3"'
    assert client.post(f"{path}/rotate-secret", headers=key).headers["etag"] == '"4"'
    assert client.get(path, headers=key).headers["etag"] == '"4"'


def test_if_match_applies_a_write_only_to_the_version_read(client: TestClient) -> None:
    _, key = new_account(client)
    path = f"/v1/endpoints/{new_endpoint(client, key)['id']}"
    read = client.get(path, headers=key).headers["etag"]
    first = client.patch(path, json={"description": "a"}, headers=key | {"If-Match": read})
    assert first.status_code == 200 and first.headers["etag"] == '"2"'
    stale = client.patch(path, json={"description": "b"}, headers=key | {"If-Match": read})
    assert_error(stale, 412, "precondition_failed")
    assert "now 2" in stale.json()["error"]["message"] and stale.headers["etag"] == '"2"'
    assert_error(client.delete(path, headers=key | {"If-Match": read}), 412, "precondition_failed")
    assert client.get(path, headers=key).json()["description"] == "a"
    empty = client.patch(path, json={}, headers=key | {"If-Match": read})
    assert_error(empty, 412, "precondition_failed")
    bad = client.patch(path, json={"description": "c"}, headers=key | {"If-Match": "yesterday"})
    assert_error(bad, 400, "bad_request")
    assert client.delete(path, headers=key | {"If-Match": '"2"'}).status_code == 204
    assert_error(client.get(path, headers=key), 404, "not_found")


def test_without_if_match_a_patch_changes_only_its_fields(client: TestClient) -> None:
    _, key = new_account(client)
    path = f"/v1/endpoints/{new_endpoint(client, key)['id']}"
    client.patch(path, json={"description": "kept"}, headers=key)
    changed = client.patch(path, json={"rate_limit": 5}, headers=key).json()
    assert (changed["description"], changed["rate_limit"]) == ("kept", 5)


def test_pages_follow_the_cursor(client: TestClient) -> None:
    _, key = new_account(client)
    made = [new_endpoint(client, key)["id"] for _ in range(5)]
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get("/v1/endpoints", params=params, headers=key).json()
        seen += [e["id"] for e in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(made)


def test_accounts_see_and_change_only_their_own_endpoints(client: TestClient) -> None:
    _, mine = new_account(client, "mine")
    _, theirs = new_account(client, "theirs")
    endpoint = new_endpoint(client, mine)
    path = f"/v1/endpoints/{endpoint['id']}"
    assert client.get("/v1/endpoints", headers=theirs).json()["data"] == []
    for method, suffix, body in [
        ("GET", "", None),
        ("PATCH", "", {"description": "x"}),
        ("DELETE", "", None),
        ("POST", "/disable", None),
        ("POST", "/enable", None),
        ("GET", "/secret", None),
    ]:
        response = client.request(method, path + suffix, json=body, headers=theirs)
        assert_error(response, 404, "not_found")
    assert client.get(path, headers=mine).json() == {
        k: v for k, v in endpoint.items() if k != "secret"
    }


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer vk_wrong"}, {"Authorization": "Basic eDp5"}, ADMIN]
)
def test_endpoint_routes_need_an_api_key(client: TestClient, headers: dict[str, str]) -> None:
    assert_error(client.get("/v1/endpoints", headers=headers), 401, "unauthorized")


# Bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({"url": "http://hooks.example.com/"}, 422, "invalid_field", "url"),
        ({"url": "https://10.0.0.1/hooks"}, 422, "invalid_field", "url"),
        ({"url": "https://169.254.169.254/latest"}, 422, "invalid_field", "url"),
        ({"url": "https://nowhere.invalid/"}, 422, "invalid_field", "url"),
        ({"url": "not a url"}, 422, "invalid_field", "url"),
        ({"url": URL, "event_types": ["order.eaten"]}, 422, "invalid_field", "event_types"),
        ({"url": URL, "event_types": []}, 422, "invalid_field", "event_types"),
        ({"url": URL, "event_types": "order.created"}, 422, "invalid_field", "event_types"),
        ({"url": URL, "event_types": [1]}, 422, "invalid_field", "event_types.0"),
        ({"url": 5}, 422, "invalid_field", "url"),
        ({"url": URL, "description": "x" * 501}, 422, "invalid_field", "description"),
        ({"url": URL, "filter": "data.amount >"}, 422, "invalid_field", "filter"),
        ({"url": URL, "filter": "x" * 1001}, 422, "invalid_field", "filter"),
        ({"url": URL, "headers": {"Host": "x"}}, 422, "invalid_field", "headers"),
        ({"url": URL, "headers": {"X-A": "a\nb"}}, 422, "invalid_field", "headers"),
        ({"url": URL, "headers": {"X-A": 5}}, 422, "invalid_field", "headers.X-A"),
        ({"url": URL, "secret": "whsec_x"}, 422, "unknown_field", "secret"),
        ({}, 422, "missing_field", "url"),
        ([URL], 422, "invalid_body", None),
    ],
)
def test_bad_endpoints_are_refused_naming_the_field(
    client: TestClient, body: Any, status: int, code: str, field: str | None
) -> None:
    _, key = new_account(client)
    assert_error(client.post("/v1/endpoints", json=body, headers=key), status, code, field)


def test_bad_patches_are_refused_naming_the_field(client: TestClient) -> None:
    _, key = new_account(client)
    path = f"/v1/endpoints/{new_endpoint(client, key)['id']}"
    for body, field in [
        ({"url": None}, "url"),
        ({"url": "https://127.0.0.1/"}, "url"),
        ({"enabled": False}, "enabled"),
        ({"event_types": ["nope"]}, "event_types"),
    ]:
        response = client.patch(path, json=body, headers=key)
        assert response.status_code == 422 and response.json()["error"]["field"] == field


@pytest.mark.parametrize("raw", [b"{", b"{'url': 1}", b"\xff\xfe", b'{"url": "x",}'])
def test_malformed_json_is_a_400(client: TestClient, raw: bytes) -> None:
    _, key = new_account(client)
    headers = key | {"Content-Type": "application/json"}
    response = client.post("/v1/endpoints", content=raw, headers=headers)
    assert_error(response, 400, "malformed_json")


@pytest.mark.parametrize(
    ("raw", "content_type", "code"),
    [
        (b"", "application/json", "missing_body"),
        (b"null", "application/json", "invalid_body"),
        (b'{"url": "https://hooks.example.com/"}', "text/plain", "invalid_body"),
    ],
)
def test_a_body_that_is_no_json_object_is_a_422(
    client: TestClient, raw: bytes, content_type: str, code: str
) -> None:
    _, key = new_account(client)
    headers = key | {"Content-Type": content_type}
    response = client.post("/v1/endpoints", content=raw, headers=headers)
    assert_error(response, 422, code)
    assert "JSON object" in response.json()["error"]["message"]


def test_oversized_bodies_are_a_413(client: TestClient) -> None:
    _, key = new_account(client)
    body = {"url": URL, "description": "x" * 70_000}
    assert_error(client.post("/v1/endpoints", json=body, headers=key), 413, "body_too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit still holds
        yield b'{"url": "' + b"x" * 40_000
        yield b"x" * 40_000 + b'"}'

    response = client.post("/v1/endpoints", content=chunks(), headers=key)
    assert_error(response, 413, "body_too_large")


@pytest.mark.parametrize(
    ("params", "field"),
    [({"limit": 0}, "limit"), ({"limit": "x"}, "limit"), ({"limit": 101}, "limit")],
)
def test_bad_query_parameters_are_named(
    client: TestClient, params: dict[str, Any], field: str
) -> None:
    _, key = new_account(client)
    response = client.get("/v1/endpoints", params=params, headers=key)
    assert_error(response, 422, "invalid_field", field)


def test_unknown_routes_and_methods_answer_json(client: TestClient) -> None:
    assert_error(client.get("/v1/nope"), 404, "not_found")
    assert_error(client.put("/v1/endpoints"), 405, "method_not_allowed")


def test_the_database_down_is_a_503_with_a_clear_message() -> None:
    class Down(InMemoryControlPlane):
        async def create_account(self, account: Account) -> VersionedAccount:
            raise DatabaseUnavailable("create an account: PostgreSQL is unavailable (refused)")

    with make_client(Down()) as client:
        response = client.post("/v1/accounts", json={"name": "x"}, headers=ADMIN)
    assert_error(response, 503, "database_unavailable")
    assert "database is unavailable" in response.json()["error"]["message"]
    assert response.headers["retry-after"] == "5"


# Secret rotation -----------------------------------------------------------------------------


def test_rotating_a_secret_answers_the_new_one_and_when_the_old_one_stops(
    client: TestClient,
) -> None:
    _, key = new_account(client)
    endpoint = new_endpoint(client, key)
    path = f"/v1/endpoints/{endpoint['id']}"
    before = time.time()
    response = client.post(f"{path}/rotate-secret", json={"grace_seconds": 3600}, headers=key)
    assert response.status_code == 200, response.text
    rotated = response.json()
    assert set(rotated) == {"id", "secret", "previous_secret_expires_at"}
    assert rotated["id"] == endpoint["id"]
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != endpoint["secret"]
    expires = rotated["previous_secret_expires_at"]
    assert expires.endswith("Z")
    at = datetime.fromisoformat(expires).timestamp()
    assert before + 3600 - 1 <= at <= time.time() + 3600 + 1
    shown = client.get(f"{path}/secret", headers=key).json()
    assert shown == {"id": endpoint["id"], "secret": rotated["secret"]}


def test_rotation_grace_defaults_to_a_day_and_zero_stops_the_old_secret_now() -> None:
    with make_client() as client:
        _, key = new_account(client)
        path = f"/v1/endpoints/{new_endpoint(client, key)['id']}"
        default = client.post(f"{path}/rotate-secret", headers=key).json()
        at = datetime.fromisoformat(default["previous_secret_expires_at"]).timestamp()
        assert abs(at - (time.time() + 86_400)) < 5
        assert client.get(f"{path}/secret", headers=key).json()["secret"] == default["secret"]
        now = client.post(f"{path}/rotate-secret", json={"grace_seconds": 0}, headers=key)
        assert now.status_code == 200 and now.json()["previous_secret_expires_at"] is None


def test_another_accounts_endpoint_cannot_be_rotated(client: TestClient) -> None:
    _, mine = new_account(client, "mine")
    _, theirs = new_account(client, "theirs")
    endpoint = new_endpoint(client, mine)
    path = f"/v1/endpoints/{endpoint['id']}/rotate-secret"
    assert_error(client.post(path, headers=theirs), 404, "not_found")
    assert_error(client.post("/v1/endpoints/ep_nope/rotate-secret", headers=mine), 404, "not_found")
    secret = client.get(f"/v1/endpoints/{endpoint['id']}/secret", headers=mine).json()["secret"]
    assert secret == endpoint["secret"]


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"grace_seconds": -1}, "invalid_field", "grace_seconds"),
        ({"grace_seconds": 7 * 86_400 + 1}, "invalid_field", "grace_seconds"),
        ({"grace_seconds": "3600"}, "invalid_field", "grace_seconds"),
        ({"grace_seconds": 1.5}, "invalid_field", "grace_seconds"),
        ({"grace_seconds": True}, "invalid_field", "grace_seconds"),
        ({"grace": 3600}, "unknown_field", "grace"),
        ([3600], "invalid_body", None),
    ],
)
def test_a_bad_grace_is_refused_naming_the_field(
    client: TestClient, body: Any, code: str, field: str | None
) -> None:
    _, key = new_account(client)
    endpoint = new_endpoint(client, key)
    path = f"/v1/endpoints/{endpoint['id']}/rotate-secret"
    assert_error(client.post(path, json=body, headers=key), 422, code, field)
    secret = client.get(f"/v1/endpoints/{endpoint['id']}/secret", headers=key).json()["secret"]
    assert secret == endpoint["secret"]
