"""The API's /metrics: requests counted by route template and status, never by raw path."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from test_api import make_client, new_account


def _requests(text: str) -> dict[tuple[str, str, str], float]:
    return {
        (s.labels["method"], s.labels["route"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(text)
        if family.name == "velourcity_api_requests"
        for s in family.samples
        if s.name.endswith("_total")
    }


def test_requests_are_counted_by_route_template_and_status() -> None:
    with make_client() as client:
        _, key = new_account(client)
        before = _requests(client.get("/metrics/").text)
        for n in range(3):
            client.get(f"/v1/endpoints/ep_missing{n}", headers=key)
        after = _requests(client.get("/metrics/").text)
    series = ("GET", "/v1/endpoints/{endpoint_id}", "404")
    assert after[series] - before.get(series, 0) == 3
    assert not any("ep_missing" in route for _, route, _ in after)
