"""The committed OpenAPI document (docs/openapi.json) is the one the API serves."""

from __future__ import annotations

import json
from pathlib import Path

from api_fakes import in_memory_backends
from fastapi.testclient import TestClient

from pipeline.api import create_api
from pipeline.api.openapi import openapi_document
from pipeline.settings import Settings

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_the_committed_document_is_the_served_one() -> None:
    with TestClient(create_api(Settings(), backends=in_memory_backends())) as client:
        served = client.get("/openapi.json").json()
    assert served == openapi_document()
    assert json.loads(COMMITTED.read_text()) == served, (
        "docs/openapi.json is stale: .venv/bin/python -m pipeline.api.openapi > docs/openapi.json"
    )


def test_every_route_is_versioned_and_documents_its_errors() -> None:
    document = openapi_document()
    assert document["openapi"].startswith("3.")
    for path, operations in document["paths"].items():
        assert path.startswith("/v1/")
        for operation in operations.values():
            assert {"401", "422"} <= set(operation["responses"])
