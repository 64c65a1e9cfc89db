"""Publishing to and consuming from the real broker: the foundation's promises."""

from __future__ import annotations

import io
import json
import os
import subprocess
from pathlib import Path

import avro.io
import avro.schema
import pytest
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from fastavro.schema import fingerprint, to_parsing_canonical_form

from pipeline.events import decode, default_registry
from pipeline.events.registry import SchemaRegistry, load_schema_file
from pipeline.events.samples import sample_event
from pipeline.exceptions import CorruptPayload, InvalidEvent, MissingHeader, UnknownFingerprint
from pipeline.kafka_retry import retrying
from pipeline.publisher import Publisher

pytestmark = pytest.mark.kafka
ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "schemas"


def _high_watermarks(bootstrap: str, topic: str) -> int:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks"})
    try:
        return sum(
            retrying(
                lambda p=p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1],
                what="watermarks",
            )
            for p in partitions
        )
    finally:
        consumer.close()


def _old_registry() -> SchemaRegistry:
    """What a service built before order.created v2 existed knows."""
    return SchemaRegistry([load_schema_file(p) for p in SCHEMAS.glob("*.v1.avsc")])


def test_publish_is_acked_keyed_by_order_and_decodable(kafka_settings, read_topic) -> None:
    event = sample_event("order.driver_assigned", "acct_1")
    with Publisher(kafka_settings) as publisher:
        published = publisher.publish(event)
    assert published.topic == kafka_settings.topic("velourcity.orders")
    (record,) = read_topic(published.topic, 1)
    assert record.key() == event["data"]["order_id"].encode()
    assert dict(record.headers())["velourcity-event-type"] == b"order.driver_assigned"
    assert decode(record.value(), default_registry()).event["id"] == event["id"]


def test_one_orders_events_stay_in_order(kafka_settings, read_topic) -> None:
    order_id = "ord_fixed"
    types = ["order.created", "order.driver_assigned", "order.picked_up", "order.delivered"]
    with Publisher(kafka_settings) as publisher:
        for t in types * 25:
            publisher.send(sample_event(t, "acct_1", order_id=order_id))
        publisher.flush()
    records = read_topic(kafka_settings.topic("velourcity.orders"), 100)
    assert len({r.partition() for r in records}) == 1
    assert [decode(r.value(), default_registry()).event_type for r in records] == types * 25


def test_invalid_event_is_refused_before_sending(kafka_settings) -> None:
    event = sample_event("payment.completed", "acct_1")
    event["data"]["currency"] = None
    with Publisher(kafka_settings) as publisher, pytest.raises(InvalidEvent, match="currency"):
        publisher.publish(event)
    topic = kafka_settings.topic("velourcity.payments")
    assert _high_watermarks(kafka_settings.kafka_bootstrap, topic) == 0


def test_schema_evolution_round_trip_through_the_broker(kafka_settings, read_topic) -> None:
    old, new = _old_registry(), default_registry()
    old_event = sample_event("order.created", "acct_1")
    del old_event["data"]["special_instructions"]  # v1 has no such field
    new_event = sample_event("order.created", "acct_1")
    new_event["data"]["special_instructions"] = "Leave at the door"
    with Publisher(kafka_settings, registry=old) as publisher:
        publisher.publish(old_event)
    with Publisher(kafka_settings, registry=new) as publisher:
        publisher.publish(new_event)
    records = read_topic(kafka_settings.topic("velourcity.orders"), 2)
    by_id = {}
    for record in records:
        by_id[decode(record.value(), new).event["id"]] = record.value()

    # old writer -> new reader: the added field takes its default
    read_new = decode(by_id[old_event["id"]], new)
    assert read_new.writer_version == 1
    assert read_new.event["data"]["special_instructions"] is None
    # new writer -> old reader: the old reader cannot resolve a schema it never saw...
    with pytest.raises(UnknownFingerprint):
        decode(by_id[new_event["id"]], old)
    # ...but given the shipped v2 file as writer schema it reads into v1, dropping the new field
    v2 = load_schema_file(SCHEMAS / "order.created.v2.avsc")
    read_old = decode(
        by_id[new_event["id"]], SchemaRegistry([*old.all(), v2], pin={"order.created": 1})
    )
    assert read_old.writer_version == 2
    assert "special_instructions" not in read_old.event["data"]
    assert read_old.event["data"]["order_id"] == new_event["data"]["order_id"]


def test_garbage_on_the_orders_topic_decodes_to_a_typed_error(kafka_settings, read_topic) -> None:
    topic = kafka_settings.topic("velourcity.orders")
    good = Publisher(kafka_settings).encode(sample_event("order.created", "acct_1"))[2]
    producer = Producer({"bootstrap.servers": kafka_settings.kafka_bootstrap})
    for value in (b"garbage", b"\xc3\x01" + b"\xff" * 8 + b"x", good[:-30]):
        producer.produce(topic, value=value, key=b"k")
    assert producer.flush(10) == 0
    errors = []
    for record in read_topic(topic, 3):
        with pytest.raises((MissingHeader, UnknownFingerprint, CorruptPayload)) as info:
            decode(record.value(), default_registry())
        errors.append(info.value.reason)
    assert sorted(errors) == ["corrupt_payload", "missing_header", "unknown_fingerprint"]


def test_trigger_json_is_readable_by_an_independent_avro_reader(kafka_settings, read_topic) -> None:
    env = os.environ | {
        "VELOURCITY_KAFKA_BOOTSTRAP": kafka_settings.kafka_bootstrap,
        "VELOURCITY_TOPIC_PREFIX": kafka_settings.topic_prefix,
    }
    out = subprocess.run(
        [
            str(ROOT / ".venv" / "bin" / "velourcity"),
            "trigger",
            "order.created",
            "--account",
            "acct_1",
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    printed = json.loads(out.strip().splitlines()[-1])
    assert printed["type"] == "order.created" and printed["id"].startswith("evt_")
    (record,) = read_topic(printed["topic"], 1)
    value = record.value()

    # Only the files in schemas/ and the Avro spec: no pipeline code below this line.
    assert value[:2] == b"\xc3\x01"
    writers = {}
    for path in SCHEMAS.glob("*.avsc"):
        definition = json.loads(path.read_text())
        writers[
            bytes.fromhex(fingerprint(to_parsing_canonical_form(definition), "CRC-64-AVRO"))
        ] = path
    schema = avro.schema.parse(writers[value[2:10]].read_text())
    datum = avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(io.BytesIO(value[10:])))
    assert datum["id"] == printed["id"]
    assert datum["account_id"] == "acct_1"


def test_trigger_many_is_batched(kafka_settings) -> None:
    env = os.environ | {
        "VELOURCITY_KAFKA_BOOTSTRAP": kafka_settings.kafka_bootstrap,
        "VELOURCITY_TOPIC_PREFIX": kafka_settings.topic_prefix,
    }
    out = subprocess.run(
        [
            str(ROOT / ".venv" / "bin" / "velourcity"),
            "trigger",
            "order.created",
            "--account",
            "acct_2",
            "--count",
            "10000",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert "published 10000 events" in out
    topic = kafka_settings.topic("velourcity.orders")
    assert _high_watermarks(kafka_settings.kafka_bootstrap, topic) == 10000
