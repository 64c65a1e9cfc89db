"""The sender's librdkafka consumer (:class:`pipeline.kafka.consumer.GroupConsumer`) on the real
broker: a seek and pause asked for by the loop hold, and a partition paused before a rebalance
is running again after it (librdkafka keeps a pause across a reassignment, while the loop's
timer to resume it went with the revoke: the chaos suite's receiver outage lost the deliveries
of such a retry tier)."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from confluent_kafka import Consumer, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from pipeline.kafka.config import consumer_config
from pipeline.kafka.consumer import GroupConsumer, Offsets
from pipeline.settings import Settings

pytestmark = pytest.mark.kafka


def _topic(bootstrap: str) -> str:
    name = f"group-consumer-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(name, 2, 1)]).values():
        future.result(30)
    return name


def _produce(bootstrap: str, topic: str, values: list[bytes], partition: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for value in values:
        producer.produce(topic, value, partition=partition)
    assert producer.flush(30) == 0


async def _until(condition: object, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]  # noqa: ASYNC110
        await asyncio.sleep(0.05)


def test_a_paused_partition_runs_again_after_a_rebalance(kafka_bootstrap: str) -> None:
    topic = _topic(kafka_bootstrap)
    settings = Settings(kafka_bootstrap=kafka_bootstrap, session_timeout=6)
    group = f"g-{uuid.uuid4().hex[:8]}"
    seen: list[tuple[int, int, bytes]] = []
    assigned: list[list[tuple[str, int]]] = []

    async def main() -> None:
        first: GroupConsumer | None = None

        async def on_batch(records: list[Message]) -> None:
            for record in records:
                seen.append((record.partition() or 0, record.offset() or 0, record.value() or b""))
                if seen == [(0, 0, b"hold")]:  # as the sender does with a retry not yet due
                    assert first is not None
                    first.seek(topic, record.partition() or 0, record.offset() or 0)
                    first.pause(topic, record.partition() or 0)
                    return

        async def on_assign(partitions: list[tuple[str, int]]) -> None:
            assigned.append(partitions)

        async def on_revoke(_partitions: list[tuple[str, int]]) -> Offsets:
            return {}

        config = consumer_config(
            settings, group=group, **{"partition.assignment.strategy": "range"}
        )
        first = GroupConsumer(
            config, [topic], on_batch=on_batch, on_assign=on_assign, on_revoke=on_revoke
        )
        first.start()
        await _until(lambda: assigned, 30)
        _produce(kafka_bootstrap, topic, [b"hold"], 0)
        await _until(lambda: seen, 30)
        await asyncio.sleep(1)
        assert [v for _, _, v in seen] == [b"hold"]  # sought back and paused: not read again

        second = GroupConsumer(
            dict(config), [topic], on_batch=on_batch, on_assign=on_assign, on_revoke=on_revoke
        )
        second.start()  # a rebalance; then the second leaves: another, partition 0 comes back
        await _until(lambda: len(assigned) >= 3, 40)
        await second.stop()
        await _until(lambda: len(assigned) >= 4, 40)
        _produce(kafka_bootstrap, topic, [b"after"], 0)
        await _until(lambda: b"after" in [v for _, _, v in seen], 20)
        await first.stop()

    asyncio.run(main())
    values = [v for _, _, v in seen]
    assert b"after" in values  # partition 0 runs again: it was paused before the rebalances
    assert values.count(b"hold") >= 2  # and the held record was read again from its offset


def test_a_commit_of_an_idle_consumer_is_made_at_once(kafka_bootstrap: str) -> None:
    """A commit asked for once the records are handled and nothing more comes: the consumer
    thread polls again and again; the commit must still be made, and soon (from another
    thread it waited for a gap between polls that never came, and the offsets stayed behind)."""
    topic = _topic(kafka_bootstrap)
    settings = Settings(kafka_bootstrap=kafka_bootstrap, session_timeout=6)
    group = f"g-{uuid.uuid4().hex[:8]}"
    seen: list[int] = []
    took: list[float] = []

    async def main() -> None:
        async def on_batch(records: list[Message]) -> None:
            seen.extend(record.offset() or 0 for record in records)

        async def on_assign(_partitions: list[tuple[str, int]]) -> None:
            pass

        async def on_revoke(_partitions: list[tuple[str, int]]) -> Offsets:
            return {}

        consumer = GroupConsumer(
            consumer_config(settings, group=group),
            [topic],
            on_batch=on_batch,
            on_assign=on_assign,
            on_revoke=on_revoke,
        )
        consumer.start()
        _produce(kafka_bootstrap, topic, [b"a", b"b", b"c"], 0)
        await _until(lambda: len(seen) == 3, 30)
        await asyncio.sleep(1)  # idle: the thread is polling with nothing to hand over
        for offset in (2, 3):
            started = time.monotonic()
            await asyncio.wait_for(consumer.commit({(topic, 0): (offset, "")}), 10)
            took.append(time.monotonic() - started)
        await consumer.stop()

    asyncio.run(main())
    assert max(took) < 2, took
    reader = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": group})
    try:
        (committed,) = reader.committed([TopicPartition(topic, 0)], timeout=10)
    finally:
        reader.close()
    assert committed.offset == 3
