"""The FastAPI dependency (pipeline.receiver_fastapi) through a real app and TestClient.

No ``from __future__ import annotations`` here: FastAPI reads the route's annotations at
runtime, and the dependency is a local of :class:`Receiver`.
"""

import time
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI, HTTPException
from fastapi.testclient import TestClient

from pipeline.endpoints.model import new_secret
from pipeline.idempotency import MemoryIdempotencyStore
from pipeline.receiver import sign
from pipeline.receiver_fastapi import VerifiedWebhook, verified_webhook
from pipeline.testing import SignedRequest, make_signed_request

SECRET = new_secret()
OLD = new_secret()


class Receiver:
    """An app with one webhook route; records what the route saw."""

    def __init__(self, **options: Any) -> None:
        self.seen: list[VerifiedWebhook] = []
        self.fail_next = False
        self.store = MemoryIdempotencyStore()
        options.setdefault("secrets", SECRET)
        options.setdefault("idempotency", self.store)
        dependency = verified_webhook(**options)
        app = FastAPI()

        @app.post("/webhooks")
        async def receive(hook: Annotated[VerifiedWebhook, Depends(dependency)]) -> dict[str, Any]:
            self.seen.append(hook)
            if self.fail_next:
                self.fail_next = False
                raise HTTPException(status_code=503, detail="try again")
            return {"duplicate": hook.duplicate, "type": hook.event_type}

        self.client = TestClient(app)

    def post(self, request: SignedRequest, **header_changes: str | None) -> Any:
        headers = {**request.headers, **header_changes}
        sent = {k: v for k, v in headers.items() if v is not None}
        return self.client.post("/webhooks", content=request.body, headers=sent)


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


def test_verified_webhook_reaches_the_route(receiver: Receiver) -> None:
    request = make_signed_request("order.delivered", SECRET, order_id="ord_1")
    answer = receiver.post(request)
    assert answer.status_code == 200
    assert answer.json() == {"duplicate": False, "type": "order.delivered"}
    (hook,) = receiver.seen
    assert hook.event == request.event
    assert hook.event["data"]["order_id"] == "ord_1"
    assert hook.webhook_id == request.webhook_id == request.event["id"]


def test_a_second_delivery_is_flagged_duplicate(receiver: Receiver) -> None:
    first = make_signed_request("payment.completed", SECRET)
    retry = make_signed_request("payment.completed", SECRET, event_id=first.event["id"], attempt=2)
    assert receiver.post(first).json()["duplicate"] is False
    assert receiver.post(retry).json()["duplicate"] is True
    assert receiver.post(make_signed_request("payment.completed", SECRET)).json() == {
        "duplicate": False,
        "type": "payment.completed",
    }


def test_a_failed_route_forgets_the_id_so_the_retry_is_processed(receiver: Receiver) -> None:
    request = make_signed_request("order.created", SECRET)
    receiver.fail_next = True
    assert receiver.post(request).status_code == 503
    assert receiver.post(request).json()["duplicate"] is False
    assert receiver.post(request).json()["duplicate"] is True


STALE = int(time.time()) - 3600


@pytest.mark.parametrize(
    ("change", "status", "error"),
    [
        ({"X-Velourcity-Signature": None, "webhook-signature": None}, 400, "MissingHeader"),
        ({"webhook-timestamp": None}, 400, "MissingHeader"),
        ({"X-Velourcity-Signature": "sha256=" + "0" * 64}, 401, "InvalidSignature"),
        ({"webhook-signature": "v1,AAAA"}, 401, "InvalidSignature"),
    ],
    ids=["no signature", "incomplete standard set", "bad velourcity", "bad standard"],
)
def test_bad_headers_are_answered_without_reaching_the_route(
    receiver: Receiver, change: dict[str, str | None], status: int, error: str
) -> None:
    answer = receiver.post(make_signed_request("order.created", SECRET), **change)
    assert answer.status_code == status
    assert answer.json()["detail"]["error"] == error
    assert answer.json()["detail"]["message"]
    assert receiver.seen == []


def test_stale_tampered_wrong_secret_and_malformed(receiver: Receiver) -> None:
    stale = receiver.post(make_signed_request("order.created", SECRET, timestamp=STALE))
    assert (stale.status_code, stale.json()["detail"]["error"]) == (401, "StaleTimestamp")
    request = make_signed_request("order.created", SECRET)
    tampered = receiver.client.post(
        "/webhooks", content=request.body.replace(b"EUR", b"USD"), headers=request.headers
    )
    assert (tampered.status_code, tampered.json()["detail"]["error"]) == (401, "InvalidSignature")
    wrong = receiver.post(make_signed_request("order.created", new_secret()))
    assert wrong.status_code == 401
    body = b"[1, 2, 3]"
    headers = sign(body, SECRET, webhook_id="evt_x", timestamp=int(time.time()))
    malformed = receiver.client.post("/webhooks", content=body, headers=headers)
    assert (malformed.status_code, malformed.json()["detail"]["error"]) == (400, "MalformedBody")
    for answer in (stale, tampered, wrong, malformed):
        assert SECRET not in answer.text
    assert receiver.seen == []
    assert len(receiver.store) == 0  # refused webhooks are not remembered


def test_rotation_old_and_new_secrets() -> None:
    during = make_signed_request("order.picked_up", [SECRET, OLD])  # newest first
    for held in (OLD, SECRET, [SECRET, OLD]):
        receiver = Receiver(secrets=held)
        assert receiver.post(during).status_code == 200
    after = make_signed_request("order.picked_up", SECRET)
    assert Receiver(secrets=OLD).post(after).status_code == 401


def test_secrets_from_a_callable_are_read_per_request() -> None:
    current = [OLD]
    receiver = Receiver(secrets=lambda: current)
    request = make_signed_request("order.cancelled", SECRET)
    assert receiver.post(request).status_code == 401
    current.append(SECRET)
    assert receiver.post(request).status_code == 200


def test_without_a_store_nothing_is_a_duplicate() -> None:
    receiver = Receiver(idempotency=None)
    request = make_signed_request("order.created", SECRET)
    assert [receiver.post(request).json()["duplicate"] for _ in "ab"] == [False, False]


def test_velourcity_header_alone_uses_the_body_id() -> None:
    receiver = Receiver()
    request = make_signed_request("order.created", SECRET)
    headers = {k: v for k, v in request.headers.items() if not k.startswith("webhook-")}
    answers = [
        receiver.client.post("/webhooks", content=request.body, headers=headers) for _ in "ab"
    ]
    assert [a.json()["duplicate"] for a in answers] == [False, True]
    assert receiver.seen[0].webhook_id == request.event["id"]


def test_a_bad_secret_fails_at_start_up_without_echoing_it() -> None:
    with pytest.raises(ValueError, match="secret") as caught:
        verified_webhook(secrets="whsec_c2VjcmV0*oops")
    assert "c2VjcmV0" not in str(caught.value)
