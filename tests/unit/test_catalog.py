"""The event catalog (pipeline/events/catalog.py, GET /v1/event-types): its JSON Schemas
describe the webhook bodies the pipeline really renders, and the committed partner page
(docs/event-catalog.md) is the generated one."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import orjson
import pytest
from api_fakes import in_memory_backends
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator, FormatChecker

from pipeline.api import create_api
from pipeline.events import EVENT_TYPES, default_registry
from pipeline.events.body import render_body
from pipeline.events.catalog import catalog, markdown
from pipeline.events.samples import sample_event
from pipeline.events.types import SUBSCRIBABLE_TYPES
from pipeline.settings import Settings

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "event-catalog.md"
ENTRIES = {entry["type"]: entry for entry in catalog()}


def validator(schema: dict[str, Any]) -> Draft202012Validator:
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


def current_schema(event_type: str) -> dict[str, Any]:
    schema: dict[str, Any] = ENTRIES[event_type]["versions"][-1]["schema"]
    return schema


def test_every_subscribable_type_is_listed_with_its_versions() -> None:
    assert list(ENTRIES) == list(SUBSCRIBABLE_TYPES)
    registry = default_registry()
    for event_type in EVENT_TYPES:
        entry = ENTRIES[event_type]
        versions = sorted(s.version for s in registry.all() if s.event_type == event_type)
        assert [v["version"] for v in entry["versions"]] == versions
        assert entry["current_version"] == registry.current(event_type).version
    assert [v["version"] for v in ENTRIES["order.created"]["versions"]] == [1, 2]


@pytest.mark.parametrize("event_type", SUBSCRIBABLE_TYPES)
def test_each_example_is_valid_against_its_schema(event_type: str) -> None:
    entry = ENTRIES[event_type]
    validator(current_schema(event_type)).validate(entry["example"])
    assert entry["example"]["type"] == event_type


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_rendered_webhook_bodies_are_valid_against_the_schemas(event_type: str) -> None:
    check = validator(current_schema(event_type))
    oldest = validator(ENTRIES[event_type]["versions"][0]["schema"])
    for seed in range(25):
        event = sample_event(event_type, "acct_1", rng=random.Random(seed))
        body = orjson.loads(render_body(event))
        check.validate(body)
        oldest.validate(body)  # a newer version only adds fields: old readers still accept it


def test_a_body_of_the_wrong_shape_is_not_valid() -> None:
    body = orjson.loads(render_body(sample_event("order.created", "acct_1")))
    check = validator(current_schema("order.created"))
    wrong = body | {"data": body["data"] | {"total": "12.50"}}  # a string, not minor units
    assert not check.is_valid(wrong)
    missing = body | {"data": {k: v for k, v in body["data"].items() if k != "order_id"}}
    assert not check.is_valid(missing)
    assert not check.is_valid(body | {"type": "order.delivered"})


def test_the_committed_page_is_the_generated_one() -> None:
    assert COMMITTED.read_text() == markdown(catalog()), (
        "docs/event-catalog.md is stale: .venv/bin/python -m pipeline.events.catalog"
        " > docs/event-catalog.md"
    )


def test_the_api_serves_the_catalog_to_a_signed_in_caller() -> None:
    admin = {"Authorization": "Bearer admin-token"}
    app = create_api(Settings(admin_token="admin-token"), backends=in_memory_backends())
    with TestClient(app) as client:
        assert client.get("/v1/event-types").status_code == 401
        created = client.post("/v1/accounts", json={"name": "Bistro"}, headers=admin).json()
        key = {"Authorization": f"Bearer {created['api_key']}"}
        listed = client.get("/v1/event-types", headers=key).json()["data"]
        assert [e["type"] for e in listed] == list(SUBSCRIBABLE_TYPES)
        one = client.get("/v1/event-types/order.created", headers=key).json()
        assert one == ENTRIES["order.created"]
        assert one["versions"][-1]["schema"]["$schema"].endswith("2020-12/schema")
        missing = client.get("/v1/event-types/order.eaten", headers=key)
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
