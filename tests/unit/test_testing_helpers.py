"""make_signed_request, the pipeline's (pipeline.testing) and the SDK's dependency-free twin
(velourcity_webhooks.testing): both sign exactly as the handler sends; and the SDK's pytest
plugin."""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

import httpx
import pytest
import velourcity_webhooks.testing
from standardwebhooks.webhooks import Webhook

from pipeline.delivery.handler import DeliveryHandler
from pipeline.delivery.http import new_http_sender
from pipeline.delivery.record import Delivery
from pipeline.endpoints.model import Endpoint, new_secret
from pipeline.events.types import EVENT_TYPES
from pipeline.exceptions import InvalidEvent
from pipeline.receiver import verify
from pipeline.settings import Settings
from pipeline.testing import SignedRequest, make_signed_request

pytest_plugins = ["pytester"]

MakeSigned = Callable[..., SignedRequest]


@pytest.fixture(
    params=[make_signed_request, velourcity_webhooks.testing.make_signed_request],
    ids=["pipeline", "sdk"],
)
def make(request: pytest.FixtureRequest) -> Any:
    """Each test runs with the pipeline's helper and with the SDK's."""
    return request.param


SECRET = new_secret()
CONTRACT_HEADERS = [
    "Content-Type",
    "User-Agent",
    "X-Velourcity-Signature",
    "X-Velourcity-Event",
    "X-Velourcity-Delivery-Attempt",
    "X-Velourcity-Event-Id",
    "X-Velourcity-Delivery-Id",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
]
CANONICAL = re.compile(
    rb'\{"id":"evt_[0-9A-Z]{26}","type":"[a-z_.]+",'
    rb'"created_at":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z","account_id":"acct_test","data":\{.+\}\}'
)


def sent_by_the_handler(request: SignedRequest, secrets: tuple[str, ...]) -> httpx.Request:
    """What the real DeliveryHandler POSTs for the same delivery at the same second."""
    event = request.event
    endpoint = Endpoint(
        id="ep_test",
        account_id=event["account_id"],
        url="http://127.0.0.1:9/webhooks",
        event_types=None,
        secret=secrets[0],
        previous_secrets=tuple((s, 2**62) for s in secrets[1:]),
        created_at=0,
        updated_at=0,
    )
    delivery = Delivery(
        delivery_id=request.headers["X-Velourcity-Delivery-Id"],
        event_id=event["id"],
        event_type=event["type"],
        account_id=event["account_id"],
        endpoint_id=endpoint.id,
        body=request.body.decode(),
        attempt=int(request.headers["X-Velourcity-Delivery-Attempt"]),
        event_time=0,
    )
    seen: list[httpx.Request] = []

    def answer(sent: httpx.Request) -> httpx.Response:
        sent.read()
        seen.append(sent)
        return httpx.Response(200)

    settings = Settings(allowed_networks="127.0.0.0/8")
    sender = new_http_sender(settings, transport=httpx.MockTransport(answer))
    handler = DeliveryHandler(
        settings,
        {endpoint.id: endpoint},  # type: ignore[arg-type]  # a dict has .get
        sender,
        clock=lambda: float(request.headers["webhook-timestamp"]),
        rng=random.Random(1),
    )

    async def go() -> None:
        try:
            await handler.handle(delivery)
        finally:
            await sender.aclose()

    asyncio.run(go())
    (sent,) = seen
    return sent


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_every_type_is_signed_exactly_as_the_handler_sends_it(
    make: MakeSigned, event_type: str
) -> None:
    request = make(event_type, SECRET)
    assert list(request.headers) == CONTRACT_HEADERS
    assert CANONICAL.fullmatch(request.body), request.body
    event = verify(request.headers, request.body, SECRET)
    assert event["type"] == event_type == request.headers["X-Velourcity-Event"]
    assert event["id"] == request.webhook_id == request.headers["X-Velourcity-Event-Id"]
    assert event["data"]  # realistic sample data, not an empty shell
    assert Webhook(SECRET).verify(request.body, request.headers) == event
    sent = sent_by_the_handler(request, (SECRET,))
    assert sent.content == request.body
    for name in CONTRACT_HEADERS:
        assert sent.headers[name] == request.headers[name], name


def test_overrides(make: MakeSigned) -> None:
    at = int(time.time()) - 120
    request = make(
        "order.created",
        SECRET,
        event_id="evt_01JTESTTESTTESTTESTTESTTES",
        account_id="acct_7",
        timestamp=at,
        attempt=3,
        order_id="ord_fixed",
        special_instructions="No onions",
    )
    event = request.event
    assert event["id"] == request.headers["webhook-id"] == "evt_01JTESTTESTTESTTESTTESTTES"
    assert event["account_id"] == "acct_7"
    assert event["data"]["order_id"] == "ord_fixed"
    assert event["data"]["special_instructions"] == "No onions"
    assert request.headers["webhook-timestamp"] == str(at)
    assert request.headers["X-Velourcity-Delivery-Attempt"] == "3"
    assert verify(request.headers, request.body, SECRET) == event


def test_same_seed_same_data_and_retries_keep_their_ids(make: MakeSigned) -> None:
    one, two = (
        make("order.driver_assigned", SECRET, seed=7, order_id="o", attempt=n) for n in (1, 2)
    )
    assert one.event["data"]["driver"] == two.event["data"]["driver"]
    retry = make("order.created", SECRET, event_id=one.webhook_id, attempt=2)
    assert retry.headers["X-Velourcity-Delivery-Id"] == one.headers["X-Velourcity-Delivery-Id"]


def test_sdk_bad_overrides_fail_loudly() -> None:
    make = velourcity_webhooks.testing.make_signed_request
    with pytest.raises(TypeError, match="no data field colour"):
        make("order.delivered", SECRET, colour="red")
    with pytest.raises(ValueError, match="unknown event type"):
        make("order.teleported", SECRET)
    with pytest.raises(ValueError, match="at least one secret"):
        make("order.created", [])


def test_bad_overrides_fail_loudly() -> None:
    with pytest.raises(TypeError, match="no data field colour"):
        make_signed_request("order.delivered", SECRET, colour="red")
    with pytest.raises(InvalidEvent, match="total"):
        make_signed_request("order.created", SECRET, total="a lot")
    with pytest.raises(ValueError, match="unknown event type"):
        make_signed_request("order.teleported", SECRET)
    with pytest.raises(ValueError, match="at least one secret"):
        make_signed_request("order.created", [])


def test_rotation_signs_with_every_secret(make: MakeSigned) -> None:
    old = new_secret()
    request = make("payment.completed", [SECRET, old])
    assert len(request.headers["webhook-signature"].split()) == 2
    for held in (SECRET, old):
        assert verify(request.headers, request.body, held)["type"] == "payment.completed"
    sent = sent_by_the_handler(request, (SECRET, old))
    assert sent.headers["webhook-signature"] == request.headers["webhook-signature"]


# --- the pytest plugin -----------------------------------------------------------------------


def test_the_plugin_is_registered_for_pytest() -> None:
    (plugin,) = (e for e in entry_points(group="pytest11") if e.name == "velourcity")
    assert plugin.value == "velourcity_webhooks.pytest_plugin"  # the SDK's, not the server's


PARTNER_TESTS = '''
"""A partner's receiver and its tests, using only the plugin's fixtures."""
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from velourcity_webhooks import StaleTimestamp, verify
from velourcity_webhooks.fastapi import VerifiedWebhook, verified_webhook

EVENT_TYPES = ["order.created", "order.driver_assigned", "order.picked_up",
               "order.delivered", "order.cancelled", "payment.completed"]


def make_app(secret: str) -> FastAPI:
    app = FastAPI()
    webhook = verified_webhook(secrets=secret)

    @app.post("/webhooks")
    def receive(hook: Annotated[VerifiedWebhook, Depends(webhook)]) -> dict[str, Any]:
        return {"type": hook.event_type, "order": hook.event["data"]["order_id"]}

    return app


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_receiver_accepts(velourcity_secret, velourcity_signed_request, event_type):
    client = TestClient(make_app(velourcity_secret))
    request = velourcity_signed_request(event_type, order_id="ord_42")
    answer = client.post("/webhooks", content=request.body, headers=request.headers)
    assert answer.status_code == 200
    assert answer.json() == {"type": event_type, "order": "ord_42"}


def test_receiver_refuses_other_secrets(velourcity_secret, velourcity_new_secret,
                                        velourcity_signed_request):
    client = TestClient(make_app(velourcity_secret))
    request = velourcity_signed_request("order.created", secret=velourcity_new_secret())
    answer = client.post("/webhooks", content=request.body, headers=request.headers)
    assert answer.status_code == 401


def test_rotation_and_replay(velourcity_secret, velourcity_new_secret, velourcity_signed_request):
    new = velourcity_new_secret()
    request = velourcity_signed_request("payment.completed", secret=[new, velourcity_secret])
    assert verify(request.headers, request.body, velourcity_secret)["type"] == "payment.completed"
    old = velourcity_signed_request("order.delivered", timestamp=1_000_000_000)
    with pytest.raises(StaleTimestamp):
        verify(old.headers, old.body, velourcity_secret)


def test_each_test_gets_a_fresh_secret(velourcity_secret):
    assert velourcity_secret.startswith("whsec_")
    assert velourcity_secret not in SEEN
    SEEN.append(velourcity_secret)


SEEN = []
test_each_test_gets_a_fresh_secret_again = test_each_test_gets_a_fresh_secret
'''


def test_a_partner_test_file_runs_green_with_the_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_partner=PARTNER_TESTS)
    result = pytester.runpytest("-W", "error", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=10)


def test_fixtures_are_listed_for_partners(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    result = pytester.runpytest("--fixtures", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*velourcity_secret*", "*velourcity_signed_request*"])
    assert result.ret == 0


def test_plugin_import_is_light() -> None:
    """Loaded into every pytest run: the standard library and pytest only."""
    import subprocess
    import sys

    code = (
        "import sys, velourcity_webhooks.pytest_plugin; print(sorted(m for m in sys.modules "
        "if m.startswith(('pipeline', 'velourcity_webhooks.testing', 'fastapi', 'orjson'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out.replace("'", '"')) == []
