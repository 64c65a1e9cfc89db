"""The dashboard's files are served at ``/`` and ``/dashboard/<name>`` with a strict CSP, and
nothing else is reachable through those routes (the browser test drives the page itself)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from api_fakes import in_memory_backends
from fastapi.testclient import TestClient

from pipeline.api import create_api
from pipeline.api.dashboard import ASSETS
from pipeline.settings import Settings


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(create_api(Settings(), backends=in_memory_backends())) as client:
        yield client


def test_the_page_and_its_assets_are_served_with_a_strict_policy(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    for name, kind in [("app.js", "text/javascript"), ("style.css", "text/css")]:
        assert f"/dashboard/{name}" in page.text
        asset = client.get(f"/dashboard/{name}")
        assert asset.status_code == 200
        assert asset.headers["content-type"].startswith(kind)
        assert asset.content == (ASSETS / name).read_bytes()


@pytest.mark.parametrize(
    "path",
    [
        "/dashboard/missing.js",
        "/dashboard/../dashboard.py",
        "/dashboard/%2e%2e%2fdashboard.py",
        "/dashboard/..%2fapp.py",
        "/dashboard/",
        "/dashboard/.hidden.js",
    ],
)
def test_nothing_else_is_reachable(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_the_page_is_not_in_the_openapi_document(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "/" not in paths
    assert not any(p.startswith("/dashboard") for p in paths)


def test_the_page_never_builds_markup_from_strings() -> None:
    lines = (ASSETS / "app.js").read_text().splitlines()
    script = "\n".join(line for line in lines if not line.lstrip().startswith("//"))
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script, sink
