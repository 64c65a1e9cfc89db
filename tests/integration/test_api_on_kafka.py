"""The REST API on a real broker and PostgreSQL: accounts, keys and endpoints round-trip through
the database, two accounts stay apart on every route, and revoked keys stop working."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from pipeline.api import create_api
from pipeline.settings import Settings
from pipeline.topics import create_topics

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

ADMIN = {"Authorization": "Bearer admin-secret"}
URL = "http://127.0.0.1:9/webhooks"  # allowed by the test settings' VELOURCITY_ALLOWED_NETWORKS


@pytest.fixture
def api_settings(settings_factory: Callable[..., Settings]) -> Settings:
    settings = settings_factory(admin_token="admin-secret")
    create_topics(settings)
    return settings


@pytest.fixture
def client(api_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_api(api_settings)) as client:  # the lifespan migrates the database
        yield client


def new_account(client: TestClient, name: str) -> tuple[str, str, dict[str, str]]:
    response = client.post("/v1/accounts", json={"name": name}, headers=ADMIN)
    assert response.status_code == 201, response.text
    body = response.json()
    return body["id"], body["key_prefix"], {"Authorization": f"Bearer {body['api_key']}"}


def new_endpoint(client: TestClient, key: dict[str, str]) -> dict[str, Any]:
    response = client.post("/v1/endpoints", json={"url": URL}, headers=key)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def test_two_accounts_never_see_each_others_endpoints(client: TestClient) -> None:
    _, _, alice = new_account(client, "alice")
    _, _, bob = new_account(client, "bob")
    mine = new_endpoint(client, alice)
    theirs = new_endpoint(client, bob)
    path = f"/v1/endpoints/{mine['id']}"

    listed = client.get("/v1/endpoints", headers=alice).json()
    assert [e["id"] for e in listed["data"]] == [mine["id"]]
    assert [e["id"] for e in client.get("/v1/endpoints", headers=bob).json()["data"]] == [
        theirs["id"]
    ]
    for method, suffix, body in [
        ("GET", "", None),
        ("PATCH", "", {"description": "taken over"}),
        ("POST", "/disable", None),
        ("POST", "/enable", None),
        ("GET", "/secret", None),
        ("DELETE", "", None),
    ]:
        response = client.request(method, path + suffix, json=body, headers=bob)
        assert response.status_code == 404, (method, suffix, response.text)
        assert response.json()["error"]["code"] == "not_found"

    # Alice's endpoint is untouched, and hers to change.
    shown = client.get(path, headers=alice).json()
    assert shown["enabled"] is True and shown["description"] == ""
    assert client.get(f"{path}/secret", headers=alice).json()["secret"] == mine["secret"]
    patched = client.patch(path, json={"event_types": ["order.created"]}, headers=alice)
    assert patched.json()["event_types"] == ["order.created"]
    assert client.post(f"{path}/disable", headers=alice).json()["enabled"] is False
    assert client.post(f"{path}/enable", headers=alice).json()["enabled"] is True
    assert client.delete(path, headers=alice).status_code == 204
    assert client.get(path, headers=alice).status_code == 404
    assert client.get(f"/v1/endpoints/{theirs['id']}", headers=bob).status_code == 200


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer vk_not-a-key"}, {"Authorization": "Token x"}]
)
def test_missing_or_wrong_keys_are_401(client: TestClient, headers: dict[str, str]) -> None:
    response = client.get("/v1/endpoints", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_bad_input_gets_a_json_4xx_naming_the_problem(client: TestClient) -> None:
    _, _, key = new_account(client, "carol")
    json_headers = key | {"Content-Type": "application/json"}
    cases: list[tuple[dict[str, Any], int, str | None]] = [
        ({"content": b'{"url": ', "headers": json_headers}, 400, None),
        ({"json": {"url": URL, "colour": "red"}}, 422, "colour"),
        ({"json": {"url": ["x"]}}, 422, "url"),
        ({"json": {"url": "https://169.254.169.254/"}}, 422, "url"),
        ({"json": {"url": URL, "event_types": ["order.eaten"]}}, 422, "event_types"),
        ({"json": {"url": URL, "description": "x" * 100_000}}, 413, None),
        ({"json": {"url": URL, "description": "a\u0000b"}}, 422, None),  # PostgreSQL text
    ]
    for request, status, field in cases:
        response = client.post("/v1/endpoints", **({"headers": key} | request))
        assert response.status_code == status, response.text
        assert response.json()["error"]["field"] == field
    nul = client.get("/v1/endpoints/ep_%00", headers=key)
    assert nul.status_code == 422 and nul.json()["error"]["code"] == "invalid_field"


def test_a_revoked_key_is_refused(client: TestClient) -> None:
    account_id, prefix, first = new_account(client, "dave")
    created = client.post(f"/v1/accounts/{account_id}/keys", headers=ADMIN).json()
    second = {"Authorization": f"Bearer {created['api_key']}"}
    assert client.delete(f"/v1/accounts/{account_id}/keys/{prefix}", headers=ADMIN).is_success
    assert client.get("/v1/endpoints", headers=first).status_code == 401
    assert client.get("/v1/endpoints", headers=second).status_code == 200


def test_another_api_process_sees_the_writes(client: TestClient, api_settings: Settings) -> None:
    _, _, key = new_account(client, "erin")
    endpoint = new_endpoint(client, key)
    with TestClient(create_api(api_settings)) as other:  # another process on the same database
        deadline = time.monotonic() + 10
        while (response := other.get(f"/v1/endpoints/{endpoint['id']}", headers=key)).is_error:
            assert time.monotonic() < deadline, response.text
            time.sleep(0.05)
    assert response.json()["url"] == URL


def test_an_endpoint_id_taken_already_is_a_409_and_nothing_changes(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ids are random (a ULID): a collision is the one way a create meets an existing id."""
    _, _, key = new_account(client, "Lima")
    monkeypatch.setattr("pipeline.endpoints.model.ulid", lambda: "01JCOLLISION")
    first = new_endpoint(client, key)
    again = client.post(
        "/v1/endpoints", json={"url": "http://127.0.0.1:9/other", "description": "d"}, headers=key
    )
    assert again.status_code == 409, again.text
    assert again.json()["error"]["code"] == "conflict"
    assert "exists already" in again.json()["error"]["message"]
    shown = client.get(f"/v1/endpoints/{first['id']}", headers=key)
    assert shown.json()["url"] == URL and shown.headers["etag"] == '"1"'
    assert [e["id"] for e in client.get("/v1/endpoints", headers=key).json()["data"]] == [
        first["id"]
    ]
