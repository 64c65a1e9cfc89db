"""Reading a whole topic once, as it is now: for the commands that list a topic (dead
letters, quarantine)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from pipeline.kafka.connection import librdkafka_config
from pipeline.settings import Settings


def read_to_end(settings: Settings, topic: str) -> Iterator[Message]:
    """Every record of ``topic`` present now, oldest first per partition, through a consumer
    that never joins a group nor commits."""
    consumer = Consumer(
        {
            **librdkafka_config(settings),
            "group.id": f"reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        pending = set(partitions)
        while pending:
            message = consumer.poll(1.0)
            if message is None:
                continue
            if (error := message.error()) is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    pending.discard(message.partition() or 0)
                continue
            yield message
    finally:
        consumer.close()
