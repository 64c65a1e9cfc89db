"""velourcity_webhooks: accepts what the Standard Webhooks library and the pipeline produce, rejects
tampering, a wrong secret, a stale timestamp and a missing signature, and needs no dependencies.

Run with the repository's ``make test`` (pytest testpaths include ``sdk/python/tests``); needs the
``standardwebhooks`` package (in the server's dev extra) for the interoperability checks.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib.metadata import distribution, entry_points
from pathlib import Path

import pytest
import velourcity_webhooks
from standardwebhooks.webhooks import Webhook
from velourcity_webhooks import (
    InvalidSignature,
    MalformedBody,
    MemoryIdempotencyStore,
    MissingHeader,
    StaleTimestamp,
    WebhookVerificationError,
    verify,
)
from velourcity_webhooks.testing import make_signed_request, new_secret

SECRET = new_secret()
BODY = b'{"id":"evt_1","type":"order.created","data":{"order_id":"ord_1"}}'


def standard_webhooks_request(secret: str, *, at: int | None = None) -> dict[str, str]:
    """Headers the official Standard Webhooks library makes for BODY."""
    moment = datetime.fromtimestamp(at if at is not None else time.time(), tz=UTC)
    signature = Webhook(secret).sign("msg_1", moment, BODY.decode())
    return {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": signature,
    }


def test_accepts_what_the_standard_webhooks_library_signs() -> None:
    assert verify(standard_webhooks_request(SECRET), BODY, SECRET)["id"] == "evt_1"


def test_unpadded_secrets_as_other_senders_make_them() -> None:
    secret = SECRET.rstrip("=")
    assert verify(standard_webhooks_request(secret), BODY, secret)["id"] == "evt_1"


def test_the_standard_webhooks_library_accepts_what_the_sdk_signs() -> None:
    request = make_signed_request("order.created", SECRET)
    assert Webhook(SECRET).verify(request.body, request.headers) == request.event


@pytest.mark.parametrize(
    ("case", "error", "status"),
    [
        ("tampered", InvalidSignature, 401),
        ("wrong_secret", InvalidSignature, 401),
        ("stale", StaleTimestamp, 401),
        ("future", StaleTimestamp, 401),
        ("missing", MissingHeader, 400),
        ("incomplete", MissingHeader, 400),
    ],
)
def test_rejects(case: str, error: type[WebhookVerificationError], status: int) -> None:
    headers, body, secret = standard_webhooks_request(SECRET), BODY, SECRET
    if case == "tampered":
        body = BODY.replace(b"ord_1", b"ord_2")
    elif case == "wrong_secret":
        secret = new_secret()
    elif case == "stale":
        headers = standard_webhooks_request(SECRET, at=int(time.time()) - 301)
    elif case == "future":
        headers = standard_webhooks_request(SECRET, at=int(time.time()) + 301)
    elif case == "missing":
        headers = {}
    else:
        del headers["webhook-timestamp"]
    with pytest.raises(error) as raised:
        verify(headers, body, secret)
    assert raised.value.http_status == status
    assert secret not in str(raised.value)


def test_velourcity_signature_alone_is_checked_too() -> None:
    request = make_signed_request("order.picked_up", SECRET)
    only = {"X-Velourcity-Signature": request.headers["X-Velourcity-Signature"]}
    assert verify(only, request.body, SECRET) == request.event
    with pytest.raises(InvalidSignature):
        verify(only, request.body + b" ", SECRET)


def test_rotation_either_secret_verifies() -> None:
    old, new = SECRET, new_secret()
    request = make_signed_request("payment.completed", [new, old])
    assert verify(request.headers, request.body, old)["type"] == "payment.completed"
    assert verify(request.headers, request.body, [new])["type"] == "payment.completed"
    single = make_signed_request("order.created", old)
    assert verify(single.headers, single.body, [new, old])["type"] == "order.created"


def test_the_window_is_configurable() -> None:
    request = make_signed_request("order.delivered", SECRET, timestamp=int(time.time()) - 400)
    with pytest.raises(StaleTimestamp):
        verify(request.headers, request.body, SECRET)
    assert verify(request.headers, request.body, SECRET, tolerance=600)["type"]


def test_a_signed_body_that_is_not_an_object() -> None:
    headers = {"X-Velourcity-Signature": velourcity_webhooks.velourcity_signature(b"[1]", SECRET)}
    with pytest.raises(MalformedBody):
        verify(headers, b"[1]", SECRET)


def test_text_bodies_and_bad_secrets_are_setup_errors() -> None:
    request = make_signed_request("order.created", SECRET)
    with pytest.raises(TypeError, match="bytes"):
        verify(request.headers, request.body.decode(), SECRET)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="base64"):
        verify(request.headers, request.body, "whsec_%%%")


def test_idempotency_store() -> None:
    store = MemoryIdempotencyStore(window=10, clock=lambda: 0.0)
    assert store.seen_before("msg_1") is False
    assert store.seen_before("msg_1") is True
    store.forget("msg_1")
    assert store.seen_before("msg_1") is False


def test_no_runtime_dependencies() -> None:
    dist = distribution("velourcity-webhooks-sdk")
    required = [r for r in dist.requires or [] if "extra ==" not in r]
    assert required == []
    assert [r for r in dist.requires or [] if "extra ==" in r] == [
        'fastapi>=0.100; extra == "fastapi"'
    ]


def test_typed_and_importing_it_loads_only_the_standard_library() -> None:
    assert (Path(velourcity_webhooks.__file__).parent / "py.typed").is_file()
    code = (
        "import sys; before = set(sys.modules); "
        "import velourcity_webhooks, velourcity_webhooks.testing; "
        "print(sorted({m.split('.')[0] for m in set(sys.modules) - before} "
        "- set(sys.stdlib_module_names)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['velourcity_webhooks']"


def test_the_pytest_plugin_is_registered() -> None:
    (plugin,) = (e for e in entry_points(group="pytest11") if e.name == "velourcity")
    assert plugin.value == "velourcity_webhooks.pytest_plugin"


def test_the_plugin_fixtures(velourcity_secret: str, velourcity_signed_request: object) -> None:
    request = velourcity_signed_request("order.cancelled", order_id="ord_9")  # type: ignore[operator]
    assert verify(request.headers, request.body, velourcity_secret)["data"]["order_id"] == "ord_9"


def test_the_readme_example_runs() -> None:
    """The three lines of the README, as pasted."""
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    block = readme.split("```python\n", 1)[1].split("```", 1)[0]
    request = make_signed_request("order.created", SECRET)
    scope = {"headers": request.headers, "raw_body": request.body, "SECRET": SECRET}
    exec(block.replace('"whsec_..."', "SECRET"), scope)
    assert scope["event"] == request.event
