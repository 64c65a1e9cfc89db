"""Endpoint secrets (and custom header values) never leave the endpoint record: not in logs,
errors or produced records, even when the receiver echoes the request back.

Every path of one attempt runs through the sender's real job (``Dispatcher._attempt``: the
handler, and the error handling around it) with the worker's own logging configuration writing
into a buffer, and stdlib logging captured too. Then the whole secret, its base64 key part and
the key bytes are searched for in everything that came out.
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import random
import traceback
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest
import structlog

from pipeline.delivery.dispatcher import Dispatcher
from pipeline.delivery.handler import DeliveryHandler
from pipeline.delivery.http import HttpxSender, new_http_sender
from pipeline.delivery.policy import AttemptResult
from pipeline.delivery.record import Attempt, Delivery, delivery_id_for
from pipeline.endpoints.model import Endpoint, new_secret
from pipeline.kafka.producer import Output
from pipeline.observability import configure_logging
from pipeline.receiver import InvalidSignature, verify
from pipeline.settings import Settings
from pipeline.testing import make_signed_request
from pipeline.topics import ATTEMPTS, DEAD_LETTERS, ENDPOINTS

SECRET = new_secret()
OLD_SECRET = new_secret()  # still signing: a rotation in progress
SCHEDULE = "1,2"
SETTINGS = Settings(allowed_networks="127.0.0.0/8", retry_schedule=SCHEDULE, http_timeout=0.2)
LAST_ATTEMPT = len(SETTINGS.retry_schedule) + 1


def forms(secret: str) -> list[str]:
    """Every spelling of a secret worth searching for."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    return [secret, secret.removeprefix("whsec_"), key.hex(), repr(key)[2:-1]]


PARTNER_TOKEN = "tok_live_" + new_secret()[6:30]  # a custom header: a credential too
FORBIDDEN = [*forms(SECRET), *forms(OLD_SECRET), PARTNER_TOKEN]


def endpoint() -> Endpoint:
    return Endpoint(
        id="ep_01KSECRETTEST",
        account_id="acct_1",
        url="http://127.0.0.1:9/webhooks",
        event_types=None,
        secret=SECRET,
        previous_secrets=((OLD_SECRET, 2**62),),
        headers=(("X-Partner-Token", PARTNER_TOKEN),),
        created_at=1_760_000_000_000,
        updated_at=1_760_000_000_000,
    )


def delivery(attempt: int = 1) -> Delivery:
    request = make_signed_request("order.created", SECRET, event_id="evt_01KSECRETSECRETSECRETSECR")
    return Delivery(
        delivery_id=delivery_id_for("evt_01KSECRETSECRETSECRETSECR", "ep_01KSECRETTEST"),
        event_id="evt_01KSECRETSECRETSECRETSECR",
        event_type="order.created",
        account_id="acct_1",
        endpoint_id="ep_01KSECRETTEST",
        body=request.body.decode(),
        attempt=attempt,
        event_time=1_760_000_000_000,
    )


@dataclass
class Captured:
    """Everything an attempt left behind that someone other than the endpoint owner may read."""

    texts: list[str] = field(default_factory=list)
    outputs: list[Output] = field(default_factory=list)

    def add_outputs(self, outputs: list[Output]) -> None:
        for output in outputs:
            if output.topic == SETTINGS.topic(ENDPOINTS):
                # The endpoints topic is where secrets live (the store of record, 410 path).
                assert SECRET in output.value.decode()
                continue
            self.outputs.append(output)
            self.texts.append(output.value.decode())
            self.texts.append(output.key.decode())
            self.texts.extend(f"{k}: {v!r}" for k, v in output.headers)


@pytest.fixture(params=["json", "console"])
def worker_logs(request: pytest.FixtureRequest) -> Iterator[io.StringIO]:
    """The worker's structlog configuration (``configure_logging``), written into a buffer."""
    saved = structlog.get_config()
    buffer = io.StringIO()
    configure_logging(Settings(log_format=request.param, log_level="debug"))
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(buffer), cache_logger_on_first_use=False
    )
    try:
        yield buffer
    finally:
        structlog.configure(**saved)


class Raising:
    """A Poster with a bug: the handler's caller must survive it (and log it)."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> AttemptResult:
        raise self.exc


Respond = Callable[[httpx.Request], Awaitable[httpx.Response]]


async def echo(request: httpx.Request, status: int) -> httpx.Response:
    """Like webhook.site: the response repeats the request (so the excerpt shows its headers)."""
    shown = (
        "\n".join(f"{k}: {v}" for k, v in request.headers.items()) + "\n" + request.content.decode()
    )
    return httpx.Response(status, text=shown)


def status(code: int) -> Respond:
    async def respond(request: httpx.Request) -> httpx.Response:
        return await echo(request, code)

    return respond


def raise_(exc: type[httpx.HTTPError]) -> Respond:
    async def respond(request: httpx.Request) -> httpx.Response:
        raise exc("gave up on " + str(request.url), request=request)

    return respond


async def too_slow(request: httpx.Request) -> httpx.Response:
    await asyncio.sleep(5)  # past http_timeout: the sender's own deadline ends it
    return httpx.Response(200)


PATHS: list[tuple[str, Respond | Exception, int, str]] = [
    ("delivered", status(200), 1, "delivered"),
    ("failed, retried", status(500), 1, "retry"),
    ("failed for the last time", status(500), LAST_ATTEMPT, "dead_lettered"),
    ("gone", status(410), 1, "endpoint_disabled"),
    ("connect error", raise_(httpx.ConnectError), 1, "retry"),
    ("read timeout", raise_(httpx.ReadTimeout), 1, "retry"),
    ("total timeout", too_slow, 1, "retry"),
    ("bug in the handler", RuntimeError("boom"), 1, "internal"),
]


async def attempt(
    respond: Respond | Exception, number: int
) -> tuple[list[Output], list[httpx.Request]]:
    seen: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        await request.aread()
        seen.append(request)
        assert callable(respond)
        return await respond(request)

    sender: HttpxSender | Raising
    if isinstance(respond, Exception):
        sender = Raising(respond)
    else:
        sender = new_http_sender(SETTINGS, transport=httpx.MockTransport(handler))
    lookup = {"ep_01KSECRETTEST": endpoint()}
    deliveries = DeliveryHandler(SETTINGS, lookup, sender, rng=random.Random(1))  # type: ignore[arg-type]
    try:
        # The sender's real job around the handler, error handling included.
        job = delivery(number)
        return await Dispatcher(SETTINGS, deliveries)._attempt(
            job, lookup.get(job.endpoint_id)
        ), seen
    finally:
        if isinstance(sender, HttpxSender):
            await sender.aclose()


@pytest.mark.parametrize(
    ("respond", "number", "outcome"),
    [p[1:] for p in PATHS],
    ids=[p[0] for p in PATHS],
)
def test_no_secret_in_logs_records_or_errors(
    worker_logs: io.StringIO,
    caplog: pytest.LogCaptureFixture,
    respond: Respond | Exception,
    number: int,
    outcome: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    captured = Captured()
    outputs, requests = asyncio.run(attempt(respond, number))
    captured.add_outputs(outputs)
    logged_attempts = [o for o in captured.outputs if o.topic == SETTINGS.topic(ATTEMPTS)]
    if outcome == "internal":  # our bug: no request was made, nothing in the attempt log
        assert logged_attempts == []
        assert Delivery.from_bytes(captured.outputs[0].value).internal_errors == 1
    else:
        (log_record,) = logged_attempts
        assert Attempt.from_bytes(log_record.value).outcome == outcome
    if outcome in ("dead_lettered", "endpoint_disabled"):
        assert any(o.topic == SETTINGS.topic(DEAD_LETTERS) for o in captured.outputs)
    logged = worker_logs.getvalue()
    # the capture works: not a vacuous pass
    assert '"attempt"' in logged or "attempt " in logged or "handling failed" in logged
    captured.texts += [logged, caplog.text]
    captured.texts += [f"{r.getMessage()} {r.args!r} {r.exc_info!r}" for r in caplog.records]
    if isinstance(respond, Exception):
        assert "Traceback" in logged and "boom" in logged  # the bug is logged, with its traceback
        captured.texts += traceback.format_exception(respond)
    everything = "\n".join(captured.texts)
    for spelling in FORBIDDEN:
        assert spelling not in everything
    for request in requests:  # the partner gets signatures, never the secret itself ...
        sent = "\n".join([*(f"{k}: {v}" for k, v in request.headers.items()), repr(request)])
        for spelling in forms(SECRET) + forms(OLD_SECRET):
            assert spelling not in sent
        assert request.headers["X-Partner-Token"] == PARTNER_TOKEN  # ... and its own header


def test_verification_errors_never_show_the_secret(
    worker_logs: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    """The receiving side: a refused webhook, logged as a partner's app would log it."""
    caplog.set_level(logging.DEBUG)
    log = structlog.get_logger("partner")
    request = make_signed_request("order.created", new_secret())
    for held in (SECRET, [SECRET, OLD_SECRET]):
        with pytest.raises(InvalidSignature) as caught:
            verify(request.headers, request.body, held)
        log.exception("webhook refused", exc_info=caught.value)
        logging.getLogger("partner").warning("webhook refused: %r", caught.value)
        shown = "".join(traceback.format_exception(caught.value)) + repr(caught.value)
        for spelling in FORBIDDEN:
            assert spelling not in shown
    everything = worker_logs.getvalue() + caplog.text
    assert "webhook refused" in everything
    for spelling in FORBIDDEN:
        assert spelling not in everything


def test_an_endpoint_repr_hides_its_secrets() -> None:
    shown = repr(endpoint())
    assert not any(spelling in shown for spelling in FORBIDDEN)
