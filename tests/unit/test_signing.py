"""Signatures during a secret rotation: which secret signs which header, and that a partner on
either secret verifies (with our verifier and with the Standard Webhooks library)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time

import pytest
from standardwebhooks.webhooks import Webhook

from pipeline.delivery.handler import DeliveryHandler
from pipeline.delivery.policy import AttemptResult
from pipeline.delivery.record import Delivery, delivery_id_for
from pipeline.delivery.signing import webhook_headers
from pipeline.endpoints.model import Endpoint, new_secret
from pipeline.receiver import InvalidSignature, verify
from pipeline.settings import Settings

NOW = 1_800_000_000
OLD, NEW = new_secret(), new_secret()
BODY = b'{"id":"evt_1","type":"order.created","account_id":"acct_1","data":{}}'
DELIVERY = Delivery(
    delivery_id=delivery_id_for("evt_1", "ep_1"),
    event_id="evt_1",
    event_type="order.created",
    account_id="acct_1",
    endpoint_id="ep_1",
    body=BODY.decode(),
    event_time=NOW * 1000,
)


def hex_hmac(secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), BODY, hashlib.sha256).hexdigest()


def only(headers: dict[str, str], *, standard: bool) -> dict[str, str]:
    """One scheme's headers alone, as a partner checking just that scheme sees them."""
    return {k: v for k, v in headers.items() if k.startswith("webhook-") == standard}


def test_one_secret_one_signature_each() -> None:
    headers = webhook_headers(DELIVERY, BODY, [NEW], timestamp=NOW)
    assert headers["X-Velourcity-Signature"] == hex_hmac(NEW)
    assert len(headers["webhook-signature"].split()) == 1
    assert verify(headers, BODY, NEW, now=NOW)["id"] == "evt_1"


def test_during_a_rotation_the_newest_signs_everything_and_the_old_one_standard_only() -> None:
    headers = webhook_headers(DELIVERY, BODY, [NEW, OLD], timestamp=NOW)
    assert headers["X-Velourcity-Signature"] == hex_hmac(NEW)  # the newest only
    new_sig, old_sig = headers["webhook-signature"].split(" ")
    for secret, signature in [(NEW, new_sig), (OLD, old_sig)]:
        alone = only(headers, standard=True) | {"webhook-signature": signature}
        assert verify(alone, BODY, secret, now=NOW)["id"] == "evt_1"
    with pytest.raises(InvalidSignature):
        verify(only(headers, standard=False), BODY, OLD, now=NOW)
    assert verify(only(headers, standard=False), BODY, NEW, now=NOW)["id"] == "evt_1"


def test_a_partner_on_either_secret_verifies_the_whole_webhook() -> None:
    """``verify`` with every header: the old secret cannot check X-Velourcity-Signature, so the
    Standard Webhooks signature decides while several are listed."""
    headers = webhook_headers(DELIVERY, BODY, [NEW, OLD], timestamp=NOW)
    for secret in (OLD, NEW):
        assert verify(headers, BODY, secret, now=NOW)["id"] == "evt_1"
    with pytest.raises(InvalidSignature):
        verify(headers, BODY, new_secret(), now=NOW)
    tampered = BODY.replace(b"acct_1", b"acct_2")
    with pytest.raises(InvalidSignature):
        verify(headers, tampered, OLD, now=NOW)


def test_the_standard_webhooks_library_accepts_either_secret() -> None:
    now = int(time.time())  # the library checks the timestamp against its own clock
    headers = only(webhook_headers(DELIVERY, BODY, [NEW, OLD], timestamp=now), standard=True)
    for secret in (OLD, NEW):
        assert Webhook(secret).verify(BODY, headers)["id"] == "evt_1"


class Recording:
    """The HTTP sender: keeps the headers of each POST, answers 200."""

    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> AttemptResult:
        self.headers.append(headers)
        return AttemptResult(status=200, error=None, latency_ms=1.0, excerpt="")


class OneEndpoint:
    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    def get(self, endpoint_id: str) -> Endpoint | None:
        return self.endpoint if endpoint_id == self.endpoint.id else None


def test_the_handler_signs_with_the_secrets_active_at_its_clock() -> None:
    endpoint = Endpoint(
        id="ep_1",
        account_id="acct_1",
        url="http://127.0.0.1:9/webhooks",
        event_types=None,
        secret=OLD,
        created_at=NOW * 1000,
        updated_at=NOW * 1000,
    ).rotate(60, now_ms=NOW * 1000)
    sent = Recording()
    clock = [float(NOW)]
    settings = Settings(allowed_networks="127.0.0.0/8", retry_schedule="1,2,2")
    handler = DeliveryHandler(settings, OneEndpoint(endpoint), sent, clock=lambda: clock[0])

    asyncio.run(handler.handle(DELIVERY))
    clock[0] = NOW + 60.0  # the grace has ended
    asyncio.run(handler.handle(DELIVERY))

    during, after = sent.headers
    assert (
        during["X-Velourcity-Signature"]
        == after["X-Velourcity-Signature"]
        == hex_hmac(endpoint.secret)
    )
    assert len(during["webhook-signature"].split()) == 2
    assert verify(during, BODY, OLD, now=NOW)["id"] == "evt_1"
    assert len(after["webhook-signature"].split()) == 1
    with pytest.raises(InvalidSignature):
        verify(after, BODY, OLD, now=NOW + 60)
    assert verify(after, BODY, endpoint.secret, now=NOW + 60)["id"] == "evt_1"
