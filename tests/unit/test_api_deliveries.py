"""Delivery logs, retry, recover, test events, dead letters and stats, against in-memory
backends: each account sees and resends only its own deliveries."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from api_fakes import InMemoryDeliveryLog, RecordingSender
from fastapi.testclient import TestClient
from test_api import assert_error, make_client, new_account, new_endpoint

from pipeline.delivery.record import Attempt, Delivery, Outcome
from pipeline.exceptions import DatabaseUnavailable


@pytest.fixture
def client() -> Iterator[TestClient]:
    with make_client() as client:
        yield client


def backends(client: TestClient) -> Any:
    return client.app.state.backends  # type: ignore[attr-defined]


def history(client: TestClient) -> InMemoryDeliveryLog:
    result: InMemoryDeliveryLog = backends(client).delivery_log
    return result


def sender(client: TestClient) -> RecordingSender:
    result: RecordingSender = backends(client).delivery_sender
    return result


def deliver(
    client: TestClient, account: str, endpoint: str, n: int, *outcomes: Outcome
) -> Delivery:
    """A delivery seen by the history, with one attempt per outcome."""
    now = int(time.time() * 1000)
    d = Delivery(
        delivery_id=f"dlv_{account}_{n}",
        event_id=f"evt_{n}",
        event_type="order.created",
        account_id=account,
        endpoint_id=endpoint,
        body='{"id":"evt"}',
        event_time=now,
    )
    history(client).add_delivery(d, seen_at=now)
    for i, outcome in enumerate(outcomes, start=1):
        history(client).add_attempt(
            Attempt(
                delivery_id=d.delivery_id,
                endpoint_id=endpoint,
                account_id=account,
                event_id=d.event_id,
                event_type=d.event_type,
                attempt=i,
                at=now + i,
                status=200 if outcome == "delivered" else 500,
                error=None,
                latency_ms=4.5,
                response_excerpt="nope",
                outcome=outcome,
                next_attempt_at=now + 5000 if outcome == "retry" else None,
            )
        )
    return d


@pytest.fixture
def two_accounts(client: TestClient) -> dict[str, Any]:
    a, key_a = new_account(client, "A")
    b, key_b = new_account(client, "B")
    ep_a, ep_b = new_endpoint(client, key_a)["id"], new_endpoint(client, key_b)["id"]
    return {"a": a, "key_a": key_a, "ep_a": ep_a, "b": b, "key_b": key_b, "ep_b": ep_b}


def test_list_and_get_show_only_the_callers_deliveries(client, two_accounts) -> None:
    t = two_accounts
    mine = deliver(client, t["a"], t["ep_a"], 1, "retry", "delivered")
    theirs = deliver(client, t["b"], t["ep_b"], 2, "dead_lettered")

    listed = client.get("/v1/deliveries", headers=t["key_a"]).json()
    assert [d["id"] for d in listed["data"]] == [mine.delivery_id]
    row = listed["data"][0]
    assert (row["status"], row["attempts"], row["last_status"]) == ("delivered", 2, 200)

    detail = client.get(f"/v1/deliveries/{mine.delivery_id}", headers=t["key_a"]).json()
    assert [a["outcome"] for a in detail["attempts_log"]] == ["retry", "delivered"]
    assert detail["attempts_log"][0]["next_attempt_at"] is not None
    assert detail["body"] == mine.body.decode()

    other = client.get(f"/v1/deliveries/{theirs.delivery_id}", headers=t["key_a"])
    assert_error(other, 404, "not_found")
    retry = client.post(f"/v1/deliveries/{theirs.delivery_id}/retry", headers=t["key_a"])
    assert_error(retry, 404, "not_found")
    assert sender(client).sent == []


def test_filters_and_cursor(client, two_accounts) -> None:
    t = two_accounts
    for n in range(5):
        deliver(client, t["a"], t["ep_a"], n, "delivered" if n % 2 else "dead_lettered")
    failed = client.get("/v1/deliveries?status=failed&limit=2", headers=t["key_a"]).json()
    assert len(failed["data"]) == 2 and failed["next_cursor"]
    rest = client.get(
        f"/v1/deliveries?status=failed&limit=2&cursor={failed['next_cursor']}", headers=t["key_a"]
    ).json()
    assert len(rest["data"]) == 1 and rest["next_cursor"] is None
    assert_error(
        client.get("/v1/deliveries?cursor=x", headers=t["key_a"]), 422, "invalid_field", "cursor"
    )
    assert_error(
        client.get("/v1/deliveries?since=yesterday", headers=t["key_a"]),
        422,
        "invalid_field",
        "since",
    )
    response = client.get("/v1/deliveries?status=lost", headers=t["key_a"])
    assert response.status_code == 422


def test_retry_sends_the_same_delivery_again_at_attempt_1(client, two_accounts) -> None:
    t = two_accounts
    d = deliver(client, t["a"], t["ep_a"], 1, "retry", "dead_lettered")
    response = client.post(f"/v1/deliveries/{d.delivery_id}/retry", headers=t["key_a"])
    assert response.status_code == 202
    (again,) = sender(client).sent
    assert (again.delivery_id, again.event_id, again.attempt, again.body) == (
        d.delivery_id,
        d.event_id,
        1,
        d.body,
    )


def test_recover_resends_only_failed_deliveries_of_that_endpoint(client, two_accounts) -> None:
    t = two_accounts
    failed = deliver(client, t["a"], t["ep_a"], 1, "dead_lettered")
    deliver(client, t["a"], t["ep_a"], 2, "delivered")
    response = client.post(
        f"/v1/endpoints/{t['ep_a']}/recover", json={"since": "-1h"}, headers=t["key_a"]
    )
    assert response.json() == {"queued": 1}
    assert [d.delivery_id for d in sender(client).sent] == [failed.delivery_id]
    other = client.post(
        f"/v1/endpoints/{t['ep_b']}/recover", json={"since": "-1h"}, headers=t["key_a"]
    )
    assert_error(other, 404, "not_found")
    bad = client.post(f"/v1/endpoints/{t['ep_a']}/recover", json={"since": 5}, headers=t["key_a"])
    assert bad.status_code == 422


def test_test_event_goes_to_that_endpoint_only(client, two_accounts) -> None:
    t = two_accounts
    response = client.post(
        f"/v1/endpoints/{t['ep_a']}/test",
        json={"event_type": "payment.completed"},
        headers=t["key_a"],
    )
    assert response.status_code == 202
    (sent,) = sender(client).sent
    assert (sent.endpoint_id, sent.event_type, sent.account_id) == (
        t["ep_a"],
        "payment.completed",
        t["a"],
    )
    assert response.json() == {"delivery_id": sent.delivery_id, "event_id": sent.event_id}
    unknown = client.post(
        f"/v1/endpoints/{t['ep_a']}/test", json={"event_type": "order.eaten"}, headers=t["key_a"]
    )
    assert_error(unknown, 422, "invalid_field", "event_type")


def test_dead_letters_are_listed_and_redriven_per_account(client, two_accounts) -> None:
    """The log's failed deliveries: dead-lettered ones and those an endpoint's end stopped."""
    t = two_accounts
    mine = deliver(client, t["a"], t["ep_a"], 1, "retry", "dead_lettered")
    stopped = deliver(client, t["a"], t["ep_a"], 2, "endpoint_disabled")
    deliver(client, t["a"], t["ep_a"], 3, "retry", "delivered")  # recovered: not a dead letter
    deliver(client, t["b"], t["ep_b"], 4, "dead_lettered")  # another account's
    listed = client.get("/v1/dead-letters", headers=t["key_a"]).json()
    assert [(d["delivery_id"], d["attempts"], d["reason"]) for d in listed["data"]] == [
        (stopped.delivery_id, 1, "endpoint_disabled after HTTP 500"),
        (mine.delivery_id, 2, "dead_lettered after HTTP 500"),
    ]
    first = client.get("/v1/dead-letters?limit=1", headers=t["key_a"]).json()
    after = client.get(f"/v1/dead-letters?cursor={first['next_cursor']}", headers=t["key_a"])
    assert [d["delivery_id"] for d in after.json()["data"]] == [mine.delivery_id]
    bad = client.get("/v1/dead-letters?cursor=nonsense", headers=t["key_a"])
    assert_error(bad, 422, "invalid_field", "cursor")

    response = client.post("/v1/dead-letters/redrive", json={}, headers=t["key_a"])
    assert response.json() == {"queued": 2}
    sent = sender(client).sent
    assert sorted(d.delivery_id for d in sent) == sorted([mine.delivery_id, stopped.delivery_id])
    assert all(d.attempt == 1 and d.body == b'{"id":"evt"}' for d in sent)
    other = client.post(
        "/v1/dead-letters/redrive", json={"endpoint_id": t["ep_b"]}, headers=t["key_a"]
    )
    assert_error(other, 404, "not_found")


def test_stats_count_attempts_per_minute_by_outcome(client, two_accounts) -> None:
    t = two_accounts
    deliver(client, t["a"], t["ep_a"], 1, "retry", "delivered")
    deliver(client, t["b"], t["ep_b"], 2, "dead_lettered")
    minutes = client.get("/v1/stats/deliveries?hours=1", headers=t["key_a"]).json()["minutes"]
    assert sum(m["retry"] for m in minutes) == 1
    assert sum(m["delivered"] for m in minutes) == 1
    assert sum(m["dead_lettered"] for m in minutes) == 0


def test_every_route_needs_a_key(client) -> None:
    for method, path in [
        ("get", "/v1/deliveries"),
        ("get", "/v1/deliveries/dlv_x"),
        ("post", "/v1/deliveries/dlv_x/retry"),
        ("get", "/v1/dead-letters"),
        ("get", "/v1/stats/deliveries"),
    ]:
        assert_error(getattr(client, method)(path), 401, "unauthorized")


def test_endpoint_health_shows_the_breaker_reported_by_the_workers(client, two_accounts) -> None:
    t = two_accounts
    path = f"/v1/endpoints/{t['ep_a']}/health"
    assert client.get(path, headers=t["key_a"]).json()["breaker"] == "closed"
    backends(client).health.apply(
        t["ep_a"], b'{"breaker": "open", "consecutive_failures": 10, "since": 1795000000000}'
    )
    health = client.get(path, headers=t["key_a"]).json()
    assert (health["breaker"], health["consecutive_failures"]) == ("open", 10)
    assert health["since"].startswith("2026-")
    assert_error(client.get(path, headers=t["key_b"]), 404, "not_found")


def test_a_database_that_is_down_answers_503_on_the_log_routes_only(
    client, two_accounts, monkeypatch
) -> None:
    t = two_accounts

    async def down(*_args: Any, **_kwargs: Any) -> None:
        raise DatabaseUnavailable("delivery log: PostgreSQL is unavailable (connection refused)")

    for name in ("page", "get", "matching", "per_minute"):
        monkeypatch.setattr(history(client), name, down)
    for method, path, body in [
        ("get", "/v1/deliveries", None),
        ("get", "/v1/deliveries/dlv_x", None),
        ("post", "/v1/deliveries/dlv_x/retry", None),
        ("post", f"/v1/endpoints/{t['ep_a']}/recover", {"since": "-1h"}),
        ("get", "/v1/stats/deliveries", None),
    ]:
        extra = {"json": body} if body else {}
        response = getattr(client, method)(path, headers=t["key_a"], **extra)
        assert_error(response, 503, "database_unavailable")
        assert response.headers["retry-after"] == "5"
        assert "connection refused" not in response.text  # the server's detail stays in the log
    assert client.get("/v1/endpoints", headers=t["key_a"]).status_code == 200


def test_times_past_what_a_datetime_holds_are_filters_not_errors() -> None:
    from pipeline.deliverylog.reads import _time

    assert _time(-(10**18)).year == 1 and _time(10**18).year == 9999
    assert _time(1_795_000_000_123).isoformat() == "2026-11-18T11:06:40.123000+00:00"
