"""A domain service publishing with a transactional producer leaves a commit marker after each
transaction, taking an offset of its own: the fan-out must commit over the markers to each
partition's end, with workers joining and leaving meanwhile (the rebalances start new epochs in
:mod:`pipeline.kafka.fanout_consumer`, issue 17), and deliver every event."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from pipeline.endpoints import EndpointWriter, new_endpoint
from pipeline.events.samples import sample_event
from pipeline.kafka.connection import librdkafka_config
from pipeline.publisher import Publisher
from pipeline.replay import FANOUT_APP
from pipeline.topics import create_topics

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]

TRANSACTIONS = 60
PER_TRANSACTION = 5
EVENTS = TRANSACTIONS * PER_TRANSACTION


def _behind(settings, topic: str) -> list[str]:
    """``topic[p]: committed/end`` for each partition the fan-out has not committed up to its
    last record: the end but for the last transaction's commit marker, which no record follows
    (a consumer commits the offset after the last record it processed)."""
    consumer = Consumer(librdkafka_config(settings, **{"group.id": settings.group(FANOUT_APP)}))
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        behind = []
        for tp in consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10):
            _low, end = consumer.get_watermark_offsets(tp, timeout=10)
            if max(tp.offset, 0) < end - 1:
                behind.append(f"{topic}[{tp.partition}]: {tp.offset}/{end}")
        return behind
    finally:
        consumer.close()


def test_transactional_topic_commits_to_its_end_through_rebalances(
    settings_factory, receiver_factory, worker_factory
) -> None:
    settings = settings_factory(domain_partitions=3)
    create_topics(settings)
    got: set[str] = set()
    lock = threading.Lock()

    def respond(request, _n):
        with lock:
            got.add(request.headers["webhook-id"])
        return 200, {}

    receiver = receiver_factory(respond)
    EndpointWriter(settings).put(new_endpoint(settings, account_id="acct_a", url=receiver.url))
    workers = [worker_factory(settings)]

    encoder = Publisher(settings)
    events = [sample_event("order.created", "acct_a") for _ in range(EVENTS)]
    producer = Producer(
        librdkafka_config(settings, **{"transactional.id": f"t17-{uuid.uuid4().hex[:8]}"})
    )
    producer.init_transactions(30)
    topics = set()

    def publish() -> None:  # about 12 s, in transactions of five events
        for n in range(TRANSACTIONS):
            producer.begin_transaction()
            for event in events[n * PER_TRANSACTION : (n + 1) * PER_TRANSACTION]:
                topic, key, value = encoder.encode(event)
                topics.add(topic)
                producer.produce(topic, value, key)
            producer.commit_transaction(30)
            time.sleep(0.2)

    publisher = threading.Thread(target=publish)
    publisher.start()
    time.sleep(3)
    workers.append(worker_factory(settings))  # 1 → 2: a rebalance mid-stream
    time.sleep(5)
    assert workers[0].stop() == 0  # 2 → 1: another
    publisher.join()
    encoder.close()

    wanted = {e["id"] for e in events}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with lock:
            if wanted <= got:
                break
        time.sleep(0.5)
    with lock:
        assert not wanted - got, f"{len(wanted - got)} events never delivered"

    (topic,) = topics
    deadline = time.monotonic() + 30
    while (behind := _behind(settings, topic)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert behind == [], behind  # the markers taken for gaps and committed over: no stall
    assert "Traceback" not in workers[1].log()
