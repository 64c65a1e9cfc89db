"""Events published by a domain service reach partner endpoints as signed POSTs: real broker,
real `velourcity worker` processes, real HTTP receivers on 127.0.0.1."""

from __future__ import annotations

import hashlib
import hmac
import subprocess
import time
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer
from conftest import settings_env
from standardwebhooks.webhooks import Webhook

from pipeline.delivery.record import Attempt, Delivery
from pipeline.endpoints import Endpoint, EndpointWriter, load_endpoints, new_endpoint
from pipeline.events import EVENT_TYPES
from pipeline.events.samples import sample_event
from pipeline.publisher import Publisher
from pipeline.settings import Settings
from pipeline.topics import ATTEMPTS, DEAD_LETTERS, QUARANTINE

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]

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


def run_cli(settings: Settings, *args: str) -> str:
    done = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "velourcity"), *args],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def register(
    settings: Settings, account: str, url: str, events: list[str] | None = None
) -> Endpoint:
    endpoint = new_endpoint(settings, account_id=account, url=url, event_types=events)
    return EndpointWriter(settings).put(endpoint)


def publish(settings: Settings, events: list[dict]) -> None:
    with Publisher(settings) as publisher:
        for event in events:
            publisher.send(event)
        publisher.flush()


def test_every_event_type_arrives_signed_filtered_and_isolated(
    kafka_settings, receiver_factory, worker_factory
) -> None:
    everything, delivered_only, other_account = (receiver_factory() for _ in range(3))
    ep_all = register(kafka_settings, "acct_a", everything.url)
    register(kafka_settings, "acct_a", delivered_only.url, ["order.delivered"])
    register(kafka_settings, "acct_b", other_account.url)
    worker_factory(kafka_settings)

    a_events = [sample_event(t, "acct_a") for t in EVENT_TYPES]
    b_event = sample_event("order.created", "acct_b")
    publish(kafka_settings, [*a_events, b_event])

    requests = everything.wait_for(6)
    delivered_only.wait_for(1)
    other_account.wait_for(1)
    time.sleep(2)  # anything wrongly routed would have arrived by now
    assert len(everything.requests) == 6

    by_type = {r.headers["X-Velourcity-Event"]: r for r in requests}
    assert set(by_type) == set(EVENT_TYPES)
    for event in a_events:
        request = by_type[event["type"]]
        headers = {k.lower(): v for k, v in request.headers.items()}
        assert set(headers) >= CONTRACT_HEADERS
        assert headers["content-type"] == "application/json"
        assert headers["user-agent"] == "Velourcity-Webhooks/1.0"
        assert headers["x-velourcity-delivery-attempt"] == "1"
        assert headers["x-velourcity-event-id"] == event["id"] == headers["webhook-id"]
        expected = hmac.new(ep_all.secret.encode(), request.body, hashlib.sha256).hexdigest()
        assert headers["x-velourcity-signature"] == f"sha256={expected}"
        Webhook(ep_all.secret).verify(request.body, headers)  # raises if it does not verify
        body = orjson.loads(request.body)
        assert list(body) == ["id", "type", "created_at", "account_id", "data"]
        assert body["id"] == event["id"]
        assert body["account_id"] == "acct_a"
        assert body["data"]["order_id"] == event["data"]["order_id"]

    assert [r.headers["X-Velourcity-Event"] for r in delivered_only.requests] == ["order.delivered"]
    assert len(other_account.requests) == 1
    assert orjson.loads(other_account.requests[0].body)["id"] == b_event["id"]


def test_410_disables_the_endpoint_and_nothing_more_is_sent(
    kafka_settings, receiver_factory, worker_factory, read_topic
) -> None:
    gone = receiver_factory(lambda _r, _n: (410, {}))
    healthy = receiver_factory()
    endpoint = register(kafka_settings, "acct_a", gone.url)
    register(kafka_settings, "acct_a", healthy.url)
    worker_factory(kafka_settings)

    first = sample_event("order.created", "acct_a")
    publish(kafka_settings, [first])
    gone.wait_for(1)
    deadline = time.monotonic() + 30
    while load_endpoints(kafka_settings)[endpoint.id].enabled and time.monotonic() < deadline:
        time.sleep(0.5)
    saved = load_endpoints(kafka_settings)[endpoint.id]
    assert not saved.enabled
    assert "410" in (saved.disabled_reason or "")
    (letter,) = read_topic(kafka_settings.topic(DEAD_LETTERS), 1)
    dead = Delivery.from_bytes(letter.value())
    assert (dead.event_id, dead.endpoint_id) == (first["id"], endpoint.id)
    assert "410" in (dead.dead_letter_reason or "")

    time.sleep(2)  # let every worker's copy of the endpoints see it
    later = sample_event("order.picked_up", "acct_a")
    publish(kafka_settings, [later])
    # The healthy endpoint of the same account gets it: the worker did fan it out...
    assert orjson.loads(healthy.wait_for(2)[1].body)["id"] == later["id"]
    # ...and the disabled one was not among its targets.
    assert len(gone.requests) == 1


def test_failing_endpoint_is_retried_per_tier_then_dead_lettered_with_its_attempt_log(
    kafka_settings, receiver_factory, worker_factory, read_topic
) -> None:
    failing = receiver_factory(lambda _r, _n: (500, {}))
    endpoint = register(kafka_settings, "acct_a", failing.url)
    worker_factory(kafka_settings)
    event = sample_event("payment.completed", "acct_a")
    publish(kafka_settings, [event])

    attempts_per_schedule = len(kafka_settings.retry_schedule) + 1  # 1,2,2 -> 4 attempts
    requests = failing.wait_for(attempts_per_schedule)
    assert [r.headers["X-Velourcity-Delivery-Attempt"] for r in requests] == ["1", "2", "3", "4"]
    assert len({r.headers["webhook-id"] for r in requests}) == 1
    assert len({r.headers["X-Velourcity-Delivery-Id"] for r in requests}) == 1
    assert len({r.body for r in requests}) == 1  # the same bytes every time

    (letter,) = read_topic(kafka_settings.topic(DEAD_LETTERS), 1)
    dead = Delivery.from_bytes(letter.value())
    assert dead.event_id == event["id"]
    time.sleep(2)  # a fifth try would come within the longest tier
    assert len(failing.requests) == attempts_per_schedule
    assert [h["attempt"] for h in dead.history] == [1, 2, 3, 4]
    assert all(h["status"] == 500 for h in dead.history)
    assert "4 attempts failed" in (dead.dead_letter_reason or "")

    log = [Attempt.from_bytes(m.value()) for m in read_topic(kafka_settings.topic(ATTEMPTS), 4)]
    assert [a.attempt for a in log] == [1, 2, 3, 4]
    assert [a.outcome for a in log] == ["retry", "retry", "retry", "dead_lettered"]
    for a in log:
        assert (a.endpoint_id, a.account_id, a.event_id) == (endpoint.id, "acct_a", event["id"])
        assert a.event_type == "payment.completed"
        assert a.status == 500
        assert a.latency_ms > 0
        assert a.response_excerpt == "ok"
    gaps = [(log[i + 1].at - log[i].at) / 1000 for i in range(3)]
    for gap, tier in zip(gaps, kafka_settings.retry_schedule, strict=True):
        assert tier * 0.8 - 0.1 <= gap <= tier * 1.2 + 1.5, (gaps, kafka_settings.retry_schedule)


def test_undecodable_input_is_quarantined_and_the_stream_carries_on(
    kafka_settings, receiver_factory, worker_factory, read_topic
) -> None:
    receiver = receiver_factory()
    register(kafka_settings, "acct_a", receiver.url)
    worker_factory(kafka_settings)
    producer = Producer({"bootstrap.servers": kafka_settings.kafka_bootstrap})
    producer.produce(kafka_settings.topic("velourcity.orders"), key=b"ord_x", value=b"\x00garbage")
    assert producer.flush(10) == 0
    good = sample_event("order.created", "acct_a")
    publish(kafka_settings, [good])

    assert orjson.loads(receiver.wait_for(1)[0].body)["id"] == good["id"]
    (record,) = read_topic(kafka_settings.topic(QUARANTINE), 1)
    headers = dict(record.headers())
    assert record.value() == b"\x00garbage"
    assert headers["velourcity-quarantine-reason"] == b"missing_header"
    assert headers["velourcity-source-topic"] == kafka_settings.topic("velourcity.orders").encode()
    assert int(headers["velourcity-source-offset"]) >= 0

    # an operator sees it, and writes it back to where it came from (once the cause is fixed;
    # this one is garbage still, so the worker quarantines it again)
    cli = [str(ROOT / ".venv" / "bin" / "velourcity"), "quarantine"]
    env = kafka_settings.as_environment()
    listed = subprocess.run(
        [*cli, "list", "--json"], env=env, capture_output=True, text=True, check=True, timeout=60
    )
    (shown,) = [orjson.loads(line) for line in listed.stdout.splitlines()]
    assert (shown["reason"], shown["bytes"]) == ("missing_header", len(b"\x00garbage"))
    assert shown["source_topic"] == kafka_settings.topic("velourcity.orders")
    redriven = subprocess.run(
        [*cli, "redrive", "--reason", "missing_header"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert "redriven 1 records" in redriven.stdout
    again = read_topic(kafka_settings.topic(QUARANTINE), 2)[1]
    assert again.value() == b"\x00garbage"
    assert dict(again.headers())["velourcity-source-topic"] == headers["velourcity-source-topic"]


def test_sigterm_mid_request_loses_nothing(
    settings_factory, receiver_factory, worker_factory
) -> None:
    """A worker stopped while a request hangs must not ack the delivery unfinished."""
    from pipeline.topics import create_topics

    settings = settings_factory(http_timeout=3)
    create_topics(settings)

    def respond(_request, count):
        if count == 0:
            time.sleep(5)  # longer than the worker's timeout: the first try fails
        return 200, {}

    receiver = receiver_factory(respond)
    register(settings, "acct_a", receiver.url)
    worker = worker_factory(settings)
    event = sample_event("order.delivered", "acct_a")
    publish(settings, [event])
    receiver.wait_for(1)
    worker.stop()  # SIGTERM while the first request hangs

    worker_factory(settings)
    second = receiver.wait_for(2)[1]
    assert second.headers["webhook-id"] == event["id"]


def test_dead_letters_are_listed_and_redriven_once_the_receiver_recovers(
    kafka_settings, receiver_factory, worker_factory, read_topic
) -> None:
    attempts = len(kafka_settings.retry_schedule) + 1
    receiver = receiver_factory(lambda _r, n: (503, {}) if n < attempts else (200, {}))
    endpoint = register(kafka_settings, "acct_a", receiver.url)
    worker_factory(kafka_settings)
    event = sample_event("order.cancelled", "acct_a")
    publish(kafka_settings, [event])
    receiver.wait_for(attempts)
    read_topic(kafka_settings.topic(DEAD_LETTERS), 1)

    listed = run_cli(kafka_settings, "dlq", "list", "--endpoint", endpoint.id, "--json")
    (line,) = [orjson.loads(x) for x in listed.splitlines()]
    assert line["event_id"] == event["id"]
    assert len(line["history"]) == attempts
    assert run_cli(kafka_settings, "dlq", "list", "--endpoint", "ep_other") == ""

    assert "redriven 1 deliveries" in run_cli(kafka_settings, "dlq", "redrive", "--since", "-1h")
    redriven = receiver.wait_for(attempts + 1)[-1]
    assert redriven.headers["X-Velourcity-Delivery-Attempt"] == "1"
    assert redriven.headers["webhook-id"] == event["id"]
    assert redriven.headers["X-Velourcity-Delivery-Id"] == line["delivery_id"]
