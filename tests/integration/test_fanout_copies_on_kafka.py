"""A delivery the fan-out writes again (after a crash or rebalance, the fan-out redoes the
events since its last commit) is not POSTed again, whether the worker that sees the copy took
the first one itself or took the partition over afterwards. A delivery sent again on purpose
(replay, "send again") carries no fan-out mark and is POSTed."""

from __future__ import annotations

import json
import time

import pytest
from confluent_kafka import Producer

from pipeline.delivery.copies import FANOUT_HEADER
from pipeline.delivery.record import Attempt, Delivery
from pipeline.endpoints import EndpointWriter, new_endpoint
from pipeline.events.body import render_body
from pipeline.events.samples import sample_event
from pipeline.publisher import Publisher
from pipeline.topics import ATTEMPTS, DELIVERIES

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(240)]


def test_fanout_copies_are_not_sent_again(
    kafka_settings, receiver_factory, worker_factory, read_topic
) -> None:
    receiver = receiver_factory(lambda _request, _count: (200, {}))
    endpoint = new_endpoint(kafka_settings, account_id="acct_a", url=receiver.url)
    EndpointWriter(kafka_settings).put(endpoint)
    deliveries = kafka_settings.topic(DELIVERIES)

    def publish(event_type: str) -> str:
        event = sample_event(event_type, "acct_a")
        with Publisher(kafka_settings) as publisher:
            publisher.send(event)
            publisher.flush()
        return str(event["id"])

    def posts_of(event_id: str) -> int:
        return sum(json.loads(r.body)["id"] == event_id for r in receiver.requests)

    def wait_for(event_id: str) -> None:
        # deliveries of one endpoint share a partition: once this one arrived, every record
        # written to the partition before it was taken
        deadline = time.monotonic() + 90
        while not posts_of(event_id) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert posts_of(event_id), f"{event_id} never arrived"

    first = worker_factory(kafka_settings)
    original = publish("order.created")
    wait_for(original)
    assert first.stop() == 0
    [record] = read_topic(deliveries, 1)
    assert dict(record.headers())[FANOUT_HEADER].startswith(b"dlv_")

    producer = Producer({"bootstrap.servers": kafka_settings.kafka_bootstrap})

    def write_again(*, as_fanout: bool) -> None:
        headers = record.headers() if as_fanout else []
        producer.produce(
            deliveries,
            record.value(),
            key=record.key(),
            partition=record.partition(),  # the fan-out's partitioner (murmur2), not librdkafka's
            headers=headers,
        )
        producer.flush(10)

    write_again(as_fanout=True)  # the fan-out's copy, written while no worker runs
    write_again(as_fanout=False)  # sent again on purpose
    worker_factory(kafka_settings)  # takes the partition over: reads the window back
    wait_for(publish("order.picked_up"))
    assert posts_of(original) == 2  # the first time, and the one sent again on purpose

    write_again(as_fanout=True)  # a copy while the worker runs
    wait_for(publish("order.delivered"))
    assert posts_of(original) == 2


def test_what_a_previous_owner_delivered_and_did_not_commit_is_not_sent_again(
    kafka_settings, receiver_factory, worker_factory
) -> None:
    """A worker killed after a request but before its commit: the attempt log says the
    attempt was delivered, so the next owner skips the record. A record written after such
    a success (a re-send) is sent."""
    receiver = receiver_factory(lambda _request, _count: (200, {}))
    endpoint = new_endpoint(kafka_settings, account_id="acct_a", url=receiver.url)
    EndpointWriter(kafka_settings).put(endpoint)
    producer = Producer({"bootstrap.servers": kafka_settings.kafka_bootstrap})

    def delivery(name: str) -> Delivery:
        event = sample_event("order.created", "acct_a")
        return Delivery(
            delivery_id=f"dlv_{name}",
            event_id=str(event["id"]),
            event_type="order.created",
            account_id="acct_a",
            endpoint_id=endpoint.id,
            body=render_body(event).decode(),
            event_time=int(time.time() * 1000),
        )

    def write(d: Delivery) -> None:
        producer.produce(
            kafka_settings.topic(DELIVERIES), d.to_bytes(), key=endpoint.id.encode(), partition=0
        )
        producer.flush(10)

    def log_delivered(d: Delivery) -> None:
        attempt = Attempt(
            delivery_id=d.delivery_id,
            endpoint_id=d.endpoint_id,
            account_id=d.account_id,
            event_id=d.event_id,
            event_type=d.event_type,
            attempt=1,
            at=int(time.time() * 1000),
            status=200,
            error=None,
            latency_ms=3.0,
            response_excerpt="",
            outcome="delivered",
        )
        producer.produce(
            kafka_settings.topic(ATTEMPTS),
            attempt.to_bytes(),
            key=endpoint.id.encode(),
            partition=0,
        )
        producer.flush(10)

    done, again, plain = delivery("done"), delivery("again"), delivery("plain")
    write(done)
    time.sleep(0.05)
    log_delivered(done)  # delivered after the record was written: the previous owner did it
    log_delivered(again)
    time.sleep(0.05)
    write(again)  # written after that success: sent again on purpose
    write(plain)

    worker_factory(kafka_settings)
    deadline = time.monotonic() + 90
    ids = lambda: [json.loads(r.body)["id"] for r in receiver.requests]  # noqa: E731
    while plain.event_id not in ids() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert plain.event_id in ids()  # the last record of the partition: the others were taken
    assert again.event_id in ids()
    assert done.event_id not in ids()
