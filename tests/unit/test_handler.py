"""One delivery attempt end to end, with a fake endpoint store and ``httpx.MockTransport``."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import random
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from pipeline.delivery.handler import INTERNAL_RETRIES, DeliveryHandler
from pipeline.delivery.http import EXCERPT_BYTES, new_http_sender
from pipeline.delivery.record import Attempt, Delivery, delivery_id_for
from pipeline.endpoints.model import Endpoint, new_secret
from pipeline.kafka.producer import Output
from pipeline.settings import Settings
from pipeline.topics import (
    ATTEMPTS,
    DEAD_LETTERS,
    DELIVERIES,
    ENDPOINTS,
    QUARANTINE,
    retry_tiers,
    retry_topic_name,
)

SETTINGS = Settings(allowed_networks="127.0.0.0/8", retry_schedule="1,2,2")
SECRET = new_secret()
URL = "http://127.0.0.1:9/webhooks"
EVENT_ID = "evt_01K7ZZZZZZZZZZZZZZZZZZZZZZ"
BODY = (
    '{"id":"evt_01K7ZZZZZZZZZZZZZZZZZZZZZZ","type":"order.created",'
    '"created_at":"2026-11-28T05:56:36.000Z","account_id":"acct_1","data":{"order_id":"ord_1",'
    '"note":"caf\u00e9 \u2615"}}'
)
CONTRACT_HEADERS = {
    "content-type",
    "user-agent",
    "x-velourcity-signature",
    "x-velourcity-event",
    "x-velourcity-delivery-attempt",
    "x-velourcity-event-id",
    "x-velourcity-delivery-id",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
}
# What HTTP itself (and httpx) adds to every request; not part of the webhook contract.
TRANSPORT_HEADERS = {"host", "content-length", "accept", "accept-encoding", "connection"}

Respond = Callable[[httpx.Request], httpx.Response]


class FakeEndpoints:
    """The endpoint lookup: a dict behind ``get``."""

    def __init__(self, *endpoints: Endpoint) -> None:
        self.by_id = {e.id: e for e in endpoints}

    def get(self, endpoint_id: str) -> Endpoint | None:
        return self.by_id.get(endpoint_id)


def make_endpoint(**changes: Any) -> Endpoint:
    values: dict[str, Any] = {
        "id": "ep_01K7TEST",
        "account_id": "acct_1",
        "url": URL,
        "event_types": None,
        "secret": SECRET,
        "created_at": 1_760_000_000_000,
        "updated_at": 1_760_000_000_000,
    } | changes
    return Endpoint(**values)


def make_delivery(**changes: Any) -> Delivery:
    values: dict[str, Any] = {
        "delivery_id": delivery_id_for(EVENT_ID, "ep_01K7TEST"),
        "event_id": EVENT_ID,
        "event_type": "order.created",
        "account_id": "acct_1",
        "endpoint_id": "ep_01K7TEST",
        "body": BODY,
        "event_time": 1_760_000_000_000,
    } | changes
    return Delivery(**values)


class Harness:
    """A handler over a MockTransport that records every request it sees."""

    def __init__(self, respond: Respond, *endpoints: Endpoint, clock: Callable[[], float]) -> None:
        self.requests: list[httpx.Request] = []

        def handler(request: httpx.Request) -> httpx.Response:
            request.read()
            self.requests.append(request)
            return respond(request)

        self.sender = new_http_sender(SETTINGS, transport=httpx.MockTransport(handler))
        self.handler = DeliveryHandler(
            SETTINGS, FakeEndpoints(*endpoints), self.sender, clock=clock, rng=random.Random(1)
        )

    async def handle_all(self, *deliveries: Delivery) -> list[list[Output]]:
        try:
            return [await self.handler.handle(d) for d in deliveries]
        finally:
            await self.sender.aclose()


def run(
    respond: Respond,
    *deliveries: Delivery,
    endpoints: tuple[Endpoint, ...] | None = None,
    clock: Callable[[], float] = time.time,
) -> tuple[list[list[Output]], list[httpx.Request]]:
    harness = Harness(
        respond, *(endpoints if endpoints is not None else (make_endpoint(),)), clock=clock
    )
    outputs = asyncio.run(harness.handle_all(*deliveries))
    return outputs, harness.requests


def run_one(
    respond: Respond, delivery: Delivery | None = None, **kwargs: Any
) -> tuple[list[Output], list[httpx.Request]]:
    outputs, requests = run(respond, delivery or make_delivery(), **kwargs)
    return outputs[0], requests


def on(topic: str, outputs: list[Output]) -> list[Output]:
    return [o for o in outputs if o.topic == topic]


def attempt_log(outputs: list[Output]) -> Attempt:
    (record,) = on(SETTINGS.topic(ATTEMPTS), outputs)
    return Attempt.from_bytes(record.value)


def status(code: int, **kwargs: Any) -> Respond:
    return lambda _request: httpx.Response(code, **kwargs)


def raising(exc: Exception) -> Respond:
    def respond(_request: httpx.Request) -> httpx.Response:
        raise exc

    return respond


FIRST_RETRY_TOPIC = retry_topic_name(SETTINGS, 1.0)


# (a) success ---------------------------------------------------------------------------------


def test_success_logs_one_delivered_attempt() -> None:
    outputs, requests = run_one(status(200, text="thanks"))
    assert len(requests) == 1
    assert [o.topic for o in outputs] == [SETTINGS.topic(ATTEMPTS)]
    log = attempt_log(outputs)
    assert log.outcome == "delivered"
    assert log.status == 200
    assert log.error is None
    assert log.attempt == 1
    assert log.delivery_id == make_delivery().delivery_id
    assert log.response_excerpt == "thanks"
    assert log.next_attempt_at is None
    assert outputs[0].key == b"ep_01K7TEST"


def test_success_request_carries_exactly_the_contract_headers_and_the_body() -> None:
    delivery = make_delivery()
    _, (request,) = run_one(status(200))
    body = request.content
    assert body == delivery.body
    assert request.method == "POST"
    assert str(request.url) == URL

    names = {name.lower() for name in request.headers}
    assert names - TRANSPORT_HEADERS == CONTRACT_HEADERS
    h = request.headers
    assert h["Content-Type"] == "application/json"
    assert h["User-Agent"] == "Velourcity-Webhooks/1.0"
    expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert h["X-Velourcity-Signature"] == f"sha256={expected}"
    assert h["X-Velourcity-Event"] == "order.created"
    assert h["X-Velourcity-Delivery-Attempt"] == "1"
    assert h["X-Velourcity-Event-Id"] == EVENT_ID
    assert h["X-Velourcity-Delivery-Id"] == delivery.delivery_id
    assert h["webhook-id"] == EVENT_ID
    assert abs(int(h["webhook-timestamp"]) - time.time()) < 60
    assert h["webhook-signature"].startswith("v1,")
    # Every header name appears once (no duplicated signature headers).
    assert len(request.headers.raw) == len(names)

    verified = Webhook(SECRET).verify(body, dict(request.headers))
    assert verified["id"] == EVENT_ID
    assert verified["data"]["note"] == "caf\u00e9 \u2615"


def test_signature_covers_the_exact_bytes() -> None:
    _, (request,) = run_one(status(200))
    tampered = request.content.replace(b"ord_1", b"ord_2")
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(tampered, dict(request.headers))


@pytest.mark.parametrize("code", [200, 201, 202, 204])
def test_any_2xx_is_delivered(code: int) -> None:
    outputs, _ = run_one(status(code))
    assert attempt_log(outputs).outcome == "delivered"
    assert len(outputs) == 1


# (b) failure -> retry tier --------------------------------------------------------------------


def test_500_goes_to_the_first_retry_tier() -> None:
    now = 1_760_000_000.0
    delivery = make_delivery()
    outputs, requests = run_one(status(500, text="boom"), delivery, clock=lambda: now)
    assert len(requests) == 1
    assert {o.topic for o in outputs} == {FIRST_RETRY_TOPIC, SETTINGS.topic(ATTEMPTS)}
    assert len(outputs) == 2

    (retry_out,) = on(FIRST_RETRY_TOPIC, outputs)
    retry = Delivery.from_bytes(retry_out.value)
    assert retry_out.key == b"ep_01K7TEST"
    assert retry.attempt == 2
    assert retry.delivery_id == delivery.delivery_id
    assert retry.body == delivery.body
    now_ms = int(now * 1000)
    assert now_ms + 800 <= retry.not_before <= now_ms + 1200  # tier 1 s ± 20 %
    assert retry.first_attempt_at == now_ms
    assert len(retry.history) == 1
    assert retry.history[0] == {"attempt": 1, "at": now_ms, "status": 500, "error": None}
    assert retry.dead_letter_reason is None

    log = attempt_log(outputs)
    assert log.outcome == "retry"
    assert log.status == 500
    assert log.attempt == 1
    assert log.response_excerpt == "boom"
    assert log.next_attempt_at == retry.not_before


def test_not_before_is_in_the_future_with_the_real_clock() -> None:
    before = int(time.time() * 1000)
    outputs, _ = run_one(status(500))
    (retry_out,) = on(FIRST_RETRY_TOPIC, outputs)
    assert Delivery.from_bytes(retry_out.value).not_before > before


def test_later_attempts_go_to_their_own_tier() -> None:
    history = ({"attempt": 1, "at": 1, "status": 500, "error": None},)
    delivery = make_delivery(attempt=2, history=history, first_attempt_at=1)
    outputs, _ = run_one(status(502), delivery)
    (retry_out,) = on(retry_topic_name(SETTINGS, 2.0), outputs)
    retry = Delivery.from_bytes(retry_out.value)
    assert retry.attempt == 3
    assert retry.first_attempt_at == 1
    assert [h["attempt"] for h in retry.history] == [1, 2]


# (c) last attempt -> dead letter --------------------------------------------------------------


def test_last_attempt_failing_is_dead_lettered_with_full_history() -> None:
    history = tuple(
        {"attempt": n, "at": 1000 * n, "status": 500, "error": None} for n in range(1, 4)
    )
    delivery = make_delivery(attempt=4, history=history, first_attempt_at=1000)
    outputs, requests = run_one(status(503), delivery)
    assert len(requests) == 1
    assert len(outputs) == 2
    (dead_out,) = on(SETTINGS.topic(DEAD_LETTERS), outputs)
    dead = Delivery.from_bytes(dead_out.value)
    assert dead.delivery_id == delivery.delivery_id
    assert dead.attempt == 4
    assert dead.dead_letter_reason is not None
    assert "4 attempts" in dead.dead_letter_reason
    assert "HTTP 503" in dead.dead_letter_reason
    assert [h["attempt"] for h in dead.history] == [1, 2, 3, 4]
    assert dead.history[-1]["status"] == 503
    assert dead.first_attempt_at == 1000
    assert dead.body == delivery.body
    assert attempt_log(outputs).outcome == "dead_lettered"
    assert not on(FIRST_RETRY_TOPIC, outputs)


# (d) 410 Gone -> disable ------------------------------------------------------------------------


def test_410_disables_the_endpoint_and_dead_letters() -> None:
    endpoint = make_endpoint()
    outputs, _ = run_one(status(410), endpoints=(endpoint,))
    assert len(outputs) == 3
    (update,) = on(SETTINGS.topic(ENDPOINTS), outputs)
    assert update.key == endpoint.id.encode()
    disabled = Endpoint.from_json(update.value)
    assert disabled.enabled is False
    assert disabled.disabled_reason
    assert "410" in disabled.disabled_reason
    assert disabled.id == endpoint.id
    assert disabled.url == endpoint.url
    assert disabled.secret == endpoint.secret
    assert disabled.updated_at >= endpoint.updated_at

    (dead_out,) = on(SETTINGS.topic(DEAD_LETTERS), outputs)
    dead = Delivery.from_bytes(dead_out.value)
    assert dead.dead_letter_reason and "410" in dead.dead_letter_reason
    assert dead.history[-1]["status"] == 410
    log = attempt_log(outputs)
    assert log.outcome == "endpoint_disabled"
    assert log.status == 410


# (e) no response: connect error, timeout -------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "error"),
    [
        (httpx.ConnectError("connection refused"), "connect_error"),
        (httpx.ReadTimeout("read timed out"), "timeout"),
    ],
)
def test_no_response_is_a_failed_attempt_that_retries(exc: Exception, error: str) -> None:
    outputs, requests = run_one(raising(exc))
    assert len(requests) == 1
    log = attempt_log(outputs)
    assert log.status is None
    assert log.error == error
    assert log.outcome == "retry"
    (retry_out,) = on(FIRST_RETRY_TOPIC, outputs)
    retry = Delivery.from_bytes(retry_out.value)
    assert retry.attempt == 2
    assert retry.history[0]["status"] is None
    assert retry.history[0]["error"] == error


def test_a_response_slower_than_the_total_timeout_is_a_timeout() -> None:
    settings = Settings(allowed_networks="127.0.0.0/8", retry_schedule="1,2,2", http_timeout=0.05)

    async def slow(_request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200)

    async def go() -> list[Output]:
        sender = new_http_sender(settings, transport=httpx.MockTransport(slow))
        handler = DeliveryHandler(settings, FakeEndpoints(make_endpoint()), sender)
        try:
            return await handler.handle(make_delivery())
        finally:
            await sender.aclose()

    outputs = asyncio.run(go())
    log = attempt_log(outputs)
    assert (log.status, log.error, log.outcome) == (None, "timeout", "retry")


# (f) redirects are not followed ----------------------------------------------------------------


@pytest.mark.parametrize("code", [301, 302, 307, 308])
def test_redirect_is_not_followed_and_counts_as_failure(code: int) -> None:
    outputs, requests = run_one(status(code, headers={"Location": "http://127.0.0.1:9/elsewhere"}))
    assert len(requests) == 1
    assert requests[0].url.path == "/webhooks"
    log = attempt_log(outputs)
    assert log.status == code
    assert log.outcome == "retry"
    assert on(FIRST_RETRY_TOPIC, outputs)


# (g) disabled or deleted endpoint ---------------------------------------------------------------


def test_disabled_endpoint_dead_letters_without_a_request() -> None:
    endpoint = make_endpoint(enabled=False, disabled_reason="paused by owner")
    outputs, requests = run_one(status(200), endpoints=(endpoint,))
    assert requests == []
    (dead_out,) = on(SETTINGS.topic(DEAD_LETTERS), outputs)
    dead = Delivery.from_bytes(dead_out.value)
    assert dead.dead_letter_reason and "paused by owner" in dead.dead_letter_reason
    assert dead.body == BODY.encode()
    log = attempt_log(outputs)
    assert log.outcome == "dead_lettered"
    assert log.status is None
    assert log.error == "endpoint_disabled"
    assert len(outputs) == 2


def test_deleted_endpoint_only_logs_an_attempt() -> None:
    outputs, requests = run_one(status(200), endpoints=())
    assert requests == []
    assert [o.topic for o in outputs] == [SETTINGS.topic(ATTEMPTS)]
    log = attempt_log(outputs)
    assert log.outcome == "endpoint_deleted"
    assert log.status is None


# (h) response excerpt ---------------------------------------------------------------------------


def test_response_excerpt_is_capped_for_a_huge_response() -> None:
    outputs, _ = run_one(status(500, content=b"x" * (5 * 1024 * 1024)))
    excerpt = attempt_log(outputs).response_excerpt
    assert excerpt == "x" * EXCERPT_BYTES
    assert EXCERPT_BYTES == 4096


def test_response_excerpt_cap_counts_bytes_not_characters() -> None:
    # 3-byte characters: 4096 bytes end inside a character.
    outputs, _ = run_one(status(500, content=("\u20ac" * 5000).encode()))
    excerpt = attempt_log(outputs).response_excerpt
    assert len(excerpt.encode()) <= EXCERPT_BYTES
    assert excerpt.startswith("\u20ac" * 1365)


def test_attempt_log_stays_small_for_a_huge_streamed_response() -> None:
    async def chunks() -> Any:
        for _ in range(1000):
            yield b"y" * 1000

    outputs, _ = run_one(lambda _r: httpx.Response(502, content=chunks()))
    log_record = on(SETTINGS.topic(ATTEMPTS), outputs)[0]
    assert len(log_record.value) < EXCERPT_BYTES + 1024
    assert attempt_log(outputs).response_excerpt == "y" * EXCERPT_BYTES


# (i) a second attempt -----------------------------------------------------------------------------


def test_second_attempt_carries_its_number_and_the_same_webhook_id() -> None:
    codes = iter([500, 200])
    outputs_first, requests_first = run_one(lambda _r: httpx.Response(next(codes)))
    (retry_out,) = on(FIRST_RETRY_TOPIC, outputs_first)
    retry = Delivery.from_bytes(retry_out.value)

    outputs_second, requests_second = run_one(lambda _r: httpx.Response(next(codes)), retry)
    first, second = requests_first[0], requests_second[0]
    assert first.headers["X-Velourcity-Delivery-Attempt"] == "1"
    assert second.headers["X-Velourcity-Delivery-Attempt"] == "2"
    assert second.headers["webhook-id"] == first.headers["webhook-id"] == EVENT_ID
    assert (
        second.headers["X-Velourcity-Delivery-Id"]
        == first.headers["X-Velourcity-Delivery-Id"]
        == retry.delivery_id
    )
    assert second.content == first.content
    assert second.headers["X-Velourcity-Signature"] == first.headers["X-Velourcity-Signature"]
    Webhook(SECRET).verify(second.content, dict(second.headers))
    log = attempt_log(outputs_second)
    assert (log.attempt, log.outcome) == (2, "delivered")


# (j) on_error -------------------------------------------------------------------------------------


def _on_error(delivery: Delivery, times: int) -> list[Output]:
    now = 1_760_000_000.0
    handler = DeliveryHandler(
        SETTINGS,
        FakeEndpoints(make_endpoint()),
        new_http_sender(SETTINGS, transport=httpx.MockTransport(status(200))),
        clock=lambda: now,
    )
    outputs: list[Output] = []
    for _ in range(times):
        outputs = handler.on_error(delivery, RuntimeError("bug"))
        if outputs[0].topic != SETTINGS.topic(QUARANTINE):
            delivery = Delivery.from_bytes(outputs[0].value or b"")
    return outputs


def test_a_bug_of_ours_retries_the_delivery_without_using_an_attempt() -> None:
    """No request was made: same attempt number, no attempt log line (not the partner's)."""
    history = ({"attempt": 1, "at": 5, "status": 500, "error": None},)
    delivery = make_delivery(attempt=2, history=history, first_attempt_at=5)
    (parked_out,) = _on_error(delivery, 1)
    assert parked_out.topic == FIRST_RETRY_TOPIC
    assert parked_out.key == b"ep_01K7TEST"
    parked = Delivery.from_bytes(parked_out.value or b"")
    assert parked == delivery.replace(not_before=1_760_000_000_000 + 1000, internal_errors=1)


def test_a_bug_of_ours_waits_longer_each_time_then_quarantines_the_delivery() -> None:
    """Bounded: a bug that always fails does not loop through the first tier forever."""
    delivery = make_delivery()
    tiers = [_on_error(delivery, n)[0].topic for n in range(1, INTERNAL_RETRIES + 1)]
    assert SETTINGS.retry_schedule == [1, 2, 2] and INTERNAL_RETRIES == 3
    assert tiers == [retry_topic_name(SETTINGS, d) for d in (1, 2, 2)]  # the retry schedule's
    (quarantined,) = _on_error(delivery, INTERNAL_RETRIES + 1)
    assert quarantined.topic == SETTINGS.topic(QUARANTINE)
    headers = dict(quarantined.headers)
    assert headers["velourcity-quarantine-reason"] == b"internal_error"
    assert headers["velourcity-source-topic"] == SETTINGS.topic(DELIVERIES).encode()
    assert b"RuntimeError: bug" in headers["velourcity-quarantine-error"]
    # as it was: redriven to the deliveries topic, it is tried afresh
    assert Delivery.from_bytes(quarantined.value or b"") == delivery


def test_records_are_valid_json() -> None:
    """Each record is one JSON object; a delivery record's body follows its line, untouched."""
    outputs, _ = run_one(status(410))
    for output in outputs:
        assert output.value is not None
        head, newline, body = output.value.partition(b"\n")
        assert isinstance(orjson.loads(head), dict)
        if newline:
            assert body == BODY.encode()


# Retry-After through the sender -----------------------------------------------------------------


@pytest.mark.parametrize("code", [429, 503])
def test_retry_after_is_honoured_up_to_the_next_tier(code: int) -> None:
    now = 1_760_000_000.0
    outputs, _ = run_one(status(code, headers={"Retry-After": "2"}), clock=lambda: now)
    (retry_out,) = on(FIRST_RETRY_TOPIC, outputs)  # still the first tier's topic
    assert Delivery.from_bytes(retry_out.value).not_before == int(now * 1000) + 2000


def test_retry_after_beyond_the_next_tier_is_clamped() -> None:
    now = 1_760_000_000.0
    outputs, _ = run_one(status(503, headers={"Retry-After": "86400"}), clock=lambda: now)
    log = attempt_log(outputs)
    assert log.next_attempt_at == int(now * 1000) + 2000


def test_unreadable_retry_after_still_reports_the_status() -> None:
    # b"\xb2" reads as "²" (latin-1), which str.isdigit() calls a digit but float() refuses.
    outputs, _ = run_one(status(503, headers={"Retry-After": b"\xb2"}))
    log = attempt_log(outputs)
    assert (log.status, log.error, log.outcome) == (503, None, "retry")


def _deferred(
    delivery: Delivery, behind_breaker: float | None, at_least: float = 0.0
) -> tuple[str, float]:
    """(tier topic, seconds until due) of a deferred delivery, with the breaker cool-down of
    SETTINGS_30 (30 s) among the tiers."""
    now = 1_000_000.0
    handler = DeliveryHandler(
        SETTINGS_30,
        FakeEndpoints(make_endpoint()),
        new_http_sender(SETTINGS_30, transport=httpx.MockTransport(status(200))),
        clock=lambda: now,
    )
    [output] = handler.defer(delivery, behind_breaker=behind_breaker, at_least=at_least)
    return output.topic, Delivery.from_bytes(output.value).not_before / 1000 - now


SETTINGS_30 = Settings(allowed_networks="127.0.0.0/8", retry_schedule="5,300", breaker_cooldown=30)


def test_behind_an_open_breaker_a_delivery_waits_for_the_probe_in_the_cooldown_tier() -> None:
    assert retry_tiers(SETTINGS_30) == [5, 30, 300]
    topic, wait = _deferred(make_delivery(attempt=1), behind_breaker=22)
    assert (topic, wait) == (retry_topic_name(SETTINGS_30, 30), 22)


def test_behind_a_breaker_a_delivery_waits_no_less_than_its_attempt_would() -> None:
    topic, wait = _deferred(make_delivery(attempt=2), behind_breaker=22)
    assert (topic, wait) == (retry_topic_name(SETTINGS_30, 300), 300)
    topic, wait = _deferred(make_delivery(attempt=1), behind_breaker=0)  # no wait: its own tier
    assert (topic, wait) == (retry_topic_name(SETTINGS_30, 5), 5)


def test_an_endpoint_at_its_share_defers_to_the_first_tier() -> None:
    topic, wait = _deferred(make_delivery(attempt=2), behind_breaker=None)
    assert (topic, wait) == (retry_topic_name(SETTINGS_30, 5), 5)


def test_past_its_share_a_delivery_waits_until_the_endpoint_may_have_room() -> None:
    """Up to the breaker's cool-down: a hanging endpoint's deliveries stop coming round every
    first tier before its breaker opens (the noisy-neighbour benchmark: ~3 rounds in 15 s)."""
    topic, wait = _deferred(make_delivery(attempt=1), behind_breaker=None, at_least=2)
    assert (topic, wait) == (retry_topic_name(SETTINGS_30, 5), 5)  # never less than the first
    topic, wait = _deferred(make_delivery(attempt=1), behind_breaker=None, at_least=12)
    assert (topic, wait) == (retry_topic_name(SETTINGS_30, 30), 12)
    topic, wait = _deferred(make_delivery(attempt=1), behind_breaker=None, at_least=500)
    assert (topic, wait) == (retry_topic_name(SETTINGS_30, 30), 30)  # no longer than a probe
