"""The endpoint value object: validation with clear refusals, and its JSON form."""

from __future__ import annotations

import base64
import socket
from typing import Any

import orjson
import pytest

from pipeline.endpoints.model import (
    MAX_DESCRIPTION,
    MAX_GRACE_SECONDS,
    MAX_PREVIOUS_SECRETS,
    Endpoint,
    check_headers,
    check_secret,
    new_endpoint,
    new_secret,
)
from pipeline.events import EVENT_TYPES
from pipeline.exceptions import InvalidEndpoint, InvalidInput, UnsafeURL
from pipeline.settings import Settings

SETTINGS = Settings(allowed_networks="127.0.0.0/8", retry_schedule="1,2,2")
PUBLIC_IP = "93.184.216.34"


class FakeResolver:
    """Registration-time DNS: a fixed table; unknown names do not resolve."""

    def __init__(self, answers: dict[str, list[str]] | None = None) -> None:
        self.answers = answers or {"hooks.example.com": [PUBLIC_IP]}
        self.asked: list[tuple[str, int]] = []

    def resolve_sync(self, host: str, port: int) -> list[str]:
        self.asked.append((host, port))
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.answers[host]


def make(**kwargs: Any) -> Endpoint:
    values: dict[str, Any] = {
        "account_id": "acct_1",
        "url": "https://hooks.example.com/velourcity",
        "resolver": FakeResolver(),
    } | kwargs
    return new_endpoint(SETTINGS, **values)


def secret_of(n_bytes: int) -> str:
    return "whsec_" + base64.b64encode(b"k" * n_bytes).decode()


# A valid endpoint -------------------------------------------------------------------------------


def test_new_endpoint_with_a_public_https_url() -> None:
    resolver = FakeResolver()
    endpoint = make(resolver=resolver, description="orders to the kitchen display")
    assert endpoint.id.startswith("ep_")
    assert len(endpoint.id) > len("ep_") + 20
    assert endpoint.account_id == "acct_1"
    assert endpoint.url == "https://hooks.example.com/velourcity"
    assert endpoint.event_types is None
    assert endpoint.enabled is True
    assert endpoint.disabled_reason is None
    assert endpoint.description == "orders to the kitchen display"
    assert endpoint.created_at == endpoint.updated_at > 1_700_000_000_000
    assert resolver.asked == [("hooks.example.com", 443)]


def test_ids_are_unique() -> None:
    assert len({make().id for _ in range(50)}) == 50


def test_generated_secret_is_whsec_and_base64_of_at_least_24_bytes() -> None:
    endpoint = make()
    assert endpoint.secret.startswith("whsec_")
    key = base64.b64decode(endpoint.secret.removeprefix("whsec_"), validate=True)
    assert len(key) >= 24
    assert make().secret != endpoint.secret
    assert check_secret(endpoint.secret) == endpoint.secret


def test_new_secret_format() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret[6:], validate=True)) >= 24


def test_a_given_valid_secret_is_kept() -> None:
    secret = secret_of(32)
    assert make(secret=secret).secret == secret
    assert make(secret=secret_of(24)).secret == secret_of(24)


@pytest.mark.parametrize("wildcard", [None, ["*"], ("*",), "*", [], [" * "]])
def test_star_or_none_means_every_type(wildcard: Any) -> None:
    endpoint = make(event_types=wildcard)
    assert endpoint.event_types is None
    for event_type in EVENT_TYPES:
        assert endpoint.wants(event_type)


def test_event_types_subset() -> None:
    endpoint = make(event_types=["order.created", "payment.completed", "order.created"])
    assert endpoint.event_types == ("order.created", "payment.completed")
    assert endpoint.wants("order.created")
    assert endpoint.wants("payment.completed")
    assert not endpoint.wants("order.delivered")


def test_a_disabled_endpoint_wants_nothing() -> None:
    endpoint = make().replace(enabled=False, disabled_reason="by its owner")
    assert not any(endpoint.wants(t) for t in EVENT_TYPES)


def test_loopback_http_is_accepted_in_the_allowed_networks() -> None:
    endpoint = make(url="http://127.0.0.1:8080/webhooks")
    assert endpoint.url == "http://127.0.0.1:8080/webhooks"


# Refusals -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "error", "says"),
    [
        ("ftp://hooks.example.com/x", InvalidEndpoint, "scheme"),
        ("https://user:pw@hooks.example.com/x", InvalidEndpoint, "credentials"),
        ("https:///path-only", InvalidEndpoint, "host"),
        ("not a url", InvalidEndpoint, "endpoint URL"),
        ("https://nowhere.invalid/x", InvalidEndpoint, "does not resolve"),
        ("http://hooks.example.com/x", UnsafeURL, "plain http"),
        ("https://10.1.2.3/x", UnsafeURL, "private"),
        ("https://169.254.169.254/latest/meta-data", UnsafeURL, "metadata"),
        ("https://localhost/x", UnsafeURL, "localhost"),
        ("https://[fd00::1]/x", UnsafeURL, "unique local"),
    ],
)
def test_bad_urls_are_refused_with_a_clear_message(
    url: str, error: type[Exception], says: str
) -> None:
    with pytest.raises(error, match=says):
        make(url=url)


def test_a_name_resolving_to_a_private_address_is_refused() -> None:
    resolver = FakeResolver({"sneaky.example.com": [PUBLIC_IP, "192.168.1.10"]})
    with pytest.raises(UnsafeURL, match=r"resolves to 192\.168\.1\.10"):
        make(url="https://sneaky.example.com/x", resolver=resolver)


def test_credentials_are_never_echoed() -> None:
    with pytest.raises(InvalidEndpoint) as info:
        make(url="https://admin:hunter2@hooks.example.com/x")
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    "types",
    [["order.shipped"], ["order.created", "nope"], ["*", "order.created"], ["ORDER.CREATED"]],
)
def test_unknown_event_types_are_refused(types: list[str]) -> None:
    with pytest.raises(InvalidEndpoint, match="unknown event type") as info:
        make(event_types=types)
    assert "order.created" in str(info.value)  # says what is accepted


@pytest.mark.parametrize(
    ("secret", "says"),
    [
        (base64.b64encode(b"k" * 32).decode(), "starts with 'whsec_'"),
        ("sk_" + base64.b64encode(b"k" * 32).decode(), "starts with 'whsec_'"),
        ("whsec_not base64 at all!!", "not valid base64"),
        ("whsec_\u00e9\u00e9\u00e9\u00e9", "not valid base64"),
        (secret_of(16), "at least 24"),
        (secret_of(23), "at least 24"),
        ("whsec_", "at least 24"),
    ],
)
def test_bad_secrets_are_refused(secret: str, says: str) -> None:
    with pytest.raises(InvalidEndpoint, match=says):
        make(secret=secret)


@pytest.mark.parametrize(
    "account_id", ["", "acct-1", "acct 1", "acct/1", "a" * 65, "acct_1;drop", "acct.1"]
)
def test_bad_account_ids_are_refused(account_id: str) -> None:
    with pytest.raises(InvalidEndpoint, match="account id"):
        make(account_id=account_id)


@pytest.mark.parametrize("account_id", ["acct_1", "a", "A" * 64, "acct_ABC_123"])
def test_good_account_ids(account_id: str) -> None:
    assert make(account_id=account_id).account_id == account_id


def test_too_long_description_is_refused() -> None:
    assert make(description="d" * MAX_DESCRIPTION).description == "d" * MAX_DESCRIPTION
    with pytest.raises(InvalidEndpoint, match=f"at most {MAX_DESCRIPTION}"):
        make(description="d" * (MAX_DESCRIPTION + 1))


def test_refusals_are_input_errors() -> None:
    assert issubclass(UnsafeURL, InvalidEndpoint)
    assert issubclass(InvalidEndpoint, InvalidInput)
    assert issubclass(InvalidEndpoint, ValueError)


# JSON ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("types", [None, ["order.created", "order.delivered"]])
def test_json_round_trip(types: list[str] | None) -> None:
    endpoint = make(event_types=types, description="caf\u00e9 \u2615")
    again = Endpoint.from_json(endpoint.to_json())
    assert again == endpoint
    assert again.event_types == endpoint.event_types


def test_json_round_trip_of_a_disabled_endpoint() -> None:
    endpoint = make().replace(enabled=False, disabled_reason="endpoint answered 410 Gone")
    again = Endpoint.from_json(endpoint.to_json())
    assert again == endpoint
    assert again.enabled is False


def test_replace_moves_updated_at_and_keeps_the_rest() -> None:
    endpoint = make()
    changed = endpoint.replace(description="new")
    assert changed.description == "new"
    assert changed.updated_at >= endpoint.updated_at
    assert (changed.id, changed.secret, changed.created_at) == (
        endpoint.id,
        endpoint.secret,
        endpoint.created_at,
    )


def test_public_view_lists_event_types() -> None:
    shown = make(event_types=["order.created"]).public()
    assert shown["event_types"] == ["order.created"]
    assert shown["secret"].startswith("whsec_")
    assert make().public()["event_types"] is None


# Secret rotation ------------------------------------------------------------------------------

NOW_MS = 1_800_000_000_000


def test_a_new_endpoint_signs_with_its_secret_alone() -> None:
    endpoint = make()
    assert endpoint.previous_secrets == ()
    assert endpoint.signing_secrets(NOW_MS) == (endpoint.secret,)


def test_rotation_keeps_the_old_secret_signing_until_the_grace_ends() -> None:
    endpoint = make()
    rotated = endpoint.rotate(3600, now_ms=NOW_MS)
    assert rotated.secret != endpoint.secret and check_secret(rotated.secret)
    assert rotated.previous_secrets == ((endpoint.secret, NOW_MS + 3_600_000),)
    assert rotated.signing_secrets(NOW_MS) == (rotated.secret, endpoint.secret)
    assert rotated.signing_secrets(NOW_MS + 3_599_999) == (rotated.secret, endpoint.secret)
    assert rotated.signing_secrets(NOW_MS + 3_600_000) == (rotated.secret,)
    assert (rotated.id, rotated.url, rotated.created_at) == (
        endpoint.id,
        endpoint.url,
        endpoint.created_at,
    )


def test_secrets_sign_newest_first_and_the_default_grace_is_a_day() -> None:
    first = make()
    second = first.rotate(now_ms=NOW_MS)
    third = second.rotate(now_ms=NOW_MS + 1000)
    assert third.previous_secrets == (
        (second.secret, NOW_MS + 1000 + 86_400_000),
        (first.secret, NOW_MS + 86_400_000),
    )
    assert third.signing_secrets(NOW_MS + 2000) == (third.secret, second.secret, first.secret)
    assert third.signing_secrets(NOW_MS + 86_400_000) == (third.secret, second.secret)


def test_rotating_with_no_grace_stops_every_old_secret_at_once() -> None:
    rotated = make().rotate(86_400, now_ms=NOW_MS).rotate(0, now_ms=NOW_MS + 1000)
    assert rotated.previous_secrets == ()
    assert rotated.signing_secrets(NOW_MS + 1000) == (rotated.secret,)


def test_a_shorter_grace_caps_older_secrets_too() -> None:
    first = make()
    rotated = first.rotate(86_400, now_ms=NOW_MS).rotate(60, now_ms=NOW_MS)
    assert [expires for _, expires in rotated.previous_secrets] == [NOW_MS + 60_000] * 2


def test_expired_secrets_are_dropped_and_few_are_kept() -> None:
    endpoint = make().rotate(60, now_ms=NOW_MS).rotate(60, now_ms=NOW_MS + 120_000)
    assert len(endpoint.previous_secrets) == 1  # the first one had expired
    for n in range(MAX_PREVIOUS_SECRETS + 3):
        endpoint = endpoint.rotate(3600, now_ms=NOW_MS + n)
    assert len(endpoint.previous_secrets) == MAX_PREVIOUS_SECRETS


@pytest.mark.parametrize("grace", [-1, MAX_GRACE_SECONDS + 1])
def test_a_grace_out_of_range_is_refused(grace: int) -> None:
    with pytest.raises(InvalidEndpoint, match="grace"):
        make().rotate(grace)


def test_json_round_trip_of_a_rotated_endpoint() -> None:
    rotated = make().rotate(3600)
    again = Endpoint.from_json(rotated.to_json())
    assert again == rotated
    assert again.signing_secrets(NOW_MS) == rotated.signing_secrets(NOW_MS)


def test_json_written_before_rotation_existed_still_reads() -> None:
    endpoint = make()
    old_record = orjson.loads(endpoint.to_json())
    del old_record["previous_secrets"]
    again = Endpoint.from_json(orjson.dumps(old_record))
    assert again == endpoint
    assert again.signing_secrets(NOW_MS) == (endpoint.secret,)


# Custom headers -------------------------------------------------------------------------------


def test_custom_headers_are_kept_in_order_and_shown_masked() -> None:
    token = "tok_live_0123456789abcdef"
    endpoint = make(headers={"X-Partner-Token": token, "X-Region": "eu"})
    assert endpoint.headers == (("X-Partner-Token", token), ("X-Region", "eu"))
    assert endpoint.masked_headers() == {"X-Partner-Token": "****cdef", "X-Region": "****"}
    assert token not in repr(endpoint)  # like the secret: never in a log line
    again = Endpoint.from_json(endpoint.to_json())
    assert again.headers == endpoint.headers


def test_an_endpoint_written_before_custom_headers_has_none() -> None:
    raw = orjson.loads(make().to_json())
    del raw["headers"]
    assert Endpoint.from_json(orjson.dumps(raw)).headers == ()


@pytest.mark.parametrize(
    ("headers", "refused"),
    [
        ({"Host": "evil.example"}, "set by the pipeline"),
        ({"content-type": "text/plain"}, "set by the pipeline"),
        ({"User-Agent": "me"}, "set by the pipeline"),
        ({"Content-Length": "1"}, "set by the pipeline"),
        ({"Transfer-Encoding": "chunked"}, "set by the pipeline"),
        ({"webhook-signature": "v1,forged"}, "set by the pipeline"),
        ({"X-Velourcity-Signature": "sha256=forged"}, "set by the pipeline"),
        ({"X-Velourcity-Event": "order.created"}, "set by the pipeline"),
        ({"Bad Name": "x"}, "not a valid HTTP header name"),
        ({"": "x"}, "not a valid HTTP header name"),
        ({"X-Split": "a\r\nX-Injected: 1"}, "CR, LF or control bytes"),
        ({"X-Nul": "a\x00b"}, "CR, LF or control bytes"),
        ({"X-Long": "x" * 4097}, "at most 4096 characters"),
        ({f"X-H{n}": "v" for n in range(21)}, "at most 20 custom headers"),
    ],
)
def test_bad_custom_headers_are_refused_without_echoing_the_value(
    headers: dict[str, str], refused: str
) -> None:
    with pytest.raises(InvalidEndpoint, match=refused) as caught:
        make(headers=headers)
    for value in headers.values():
        if len(value) > 3:
            assert value not in str(caught.value)


def test_a_header_given_twice_in_any_case_is_refused() -> None:
    with pytest.raises(InvalidEndpoint, match="given twice"):
        check_headers([("X-Token", "a"), ("x-token", "b")])
