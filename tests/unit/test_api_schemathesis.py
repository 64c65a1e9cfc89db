"""Property-based checks of the API against its own OpenAPI document (schemathesis): whatever
the input, no 5xx, and every response matches the documented status codes and schemas."""

from __future__ import annotations

import pytest
import schemathesis
from api_fakes import in_memory_backends
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from test_api import PublicResolver

from pipeline.api import create_api
from pipeline.settings import Settings

ADMIN_TOKEN = "admin-secret"
app = create_api(
    Settings(admin_token=ADMIN_TOKEN), backends=in_memory_backends(), resolver=PublicResolver()
)
with TestClient(app) as _client:
    _account = _client.post(
        "/v1/accounts", json={"name": "fuzz"}, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ).json()
    _key = {"Authorization": f"Bearer {_account['api_key']}"}
    _client.post("/v1/endpoints", json={"url": "https://hooks.example.com/x"}, headers=_key)

schema = schemathesis.openapi.from_asgi("/openapi.json", app)

# No 5xx, and every answer as documented. Left out: the checks that schema-valid input must be
# accepted (the API refuses some on meaning: an unresolvable or private URL) and that every
# schema-violating input is refused (Starlette reads a repeated query parameter's last value).
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_api_conforms_to_its_schema_and_never_fails_on_input(case: schemathesis.Case) -> None:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"} if "/accounts" in case.path else _key
    case.call_and_validate(headers=headers, checks=CHECKS)
