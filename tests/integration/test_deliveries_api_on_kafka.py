"""Delivery logs through the API with several workers and several API processes: a delivery
made by any worker shows in every API process, and retry / recover send the same webhook again.
Real broker, real `velourcity worker` and `velourcity api` processes, receivers on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from test_delivery import publish

from pipeline.events.samples import sample_event
from pipeline.topics import create_topics

ADMIN = {"Authorization": "Bearer admin-secret"}
pytestmark = [pytest.mark.kafka, pytest.mark.timeout(240)]


def _poll(check: Callable[[], Any], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.3)


def test_any_workers_deliveries_show_in_every_api_and_can_be_sent_again(
    settings_factory, receiver_factory, worker_factory, api_factory
) -> None:
    # Every attempt fails on purpose here: keep the circuit breaker from holding them back.
    settings = settings_factory(
        admin_token="admin-secret", retry_schedule="1", breaker_failures=1000
    )
    create_topics(settings)
    failing = {"on": True}
    receiver = receiver_factory(lambda _r, _n: (500, {}) if failing["on"] else (200, {}))
    workers = [worker_factory(settings) for _ in range(3)]
    first, second = api_factory(settings), api_factory(settings)
    assert _poll(lambda: all("sender started" in w.log() for w in workers), timeout=90)

    account = httpx.post(f"{first}/v1/accounts", json={"name": "Roma"}, headers=ADMIN).json()
    key = {"Authorization": f"Bearer {account['api_key']}"}
    endpoint = httpx.post(
        f"{second}/v1/endpoints", json={"url": receiver.url}, headers=key, timeout=10
    ).json()
    time.sleep(3)  # the new endpoint reaches the workers' caches

    events = [sample_event("order.created", account["id"]) for _ in range(20)]
    publish(settings, events)

    def failed_in(base: str) -> list[dict[str, Any]]:
        rows = httpx.get(f"{base}/v1/deliveries?status=failed&limit=200", headers=key).json()
        return rows["data"] if len(rows["data"]) == len(events) else []

    # With a one-tier schedule every delivery fails twice and is dead-lettered; both API
    # processes show all of them, whichever of the three workers made the attempts.
    for base in (first, second):
        rows = _poll(lambda base=base: failed_in(base), timeout=90)
        assert {r["event_id"] for r in rows} == {e["id"] for e in events}
        assert all(r["attempts"] == 2 and r["last_status"] == 500 for r in rows)

    failing["on"] = False
    one = rows[0]["id"]
    assert httpx.post(f"{first}/v1/deliveries/{one}/retry", headers=key).status_code == 202

    def delivered_detail() -> dict[str, Any] | None:
        detail: dict[str, Any] = httpx.get(f"{second}/v1/deliveries/{one}", headers=key).json()
        return detail if detail["status"] == "delivered" else None

    detail = _poll(delivered_detail, timeout=60)
    assert detail, "the retried delivery was not shown as delivered"
    assert [a["status"] for a in detail["attempts_log"]] == [500, 500, 200]

    recovered = httpx.post(
        f"{second}/v1/endpoints/{endpoint['id']}/recover", json={"since": "-1h"}, headers=key
    ).json()
    assert recovered["queued"] == len(events) - 1

    def all_delivered() -> bool:
        rows = httpx.get(f"{first}/v1/deliveries?status=delivered&limit=200", headers=key).json()
        return len(rows["data"]) == len(events)

    assert _poll(all_delivered, timeout=60)
    delivered_ids = {r.headers["webhook-id"] for r in receiver.requests if r.headers}
    assert delivered_ids == {e["id"] for e in events}
