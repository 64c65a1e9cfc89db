"""Replay: send a time window of domain events again (``velourcity replay``).

Two ways, for two situations:

* **Targeted** (:func:`replay_events`): one account's (or one endpoint's) events since T are read
  straight from the domain topics and fanned out again, marked ``replay``. It assigns
  partitions and never commits, so no consumer group moves and no other partner sees a thing.
  Event and delivery ids are the ones of the first time: receivers dedupe on ``webhook-id``.
* **Reset** (:func:`reset_offsets`): the fan-out group's committed offsets on the domain topics
  go back to T (``kafka-consumer-groups --reset-offsets --to-datetime``), so the next worker
  fans out everything since T again, for every account. Only while the group is empty: a
  running member would overwrite the reset with its next commit.
"""

from __future__ import annotations

import functools
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import (
    OFFSET_INVALID,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka import Consumer as KafkaConsumer
from confluent_kafka.admin import AdminClient

from pipeline.delivery.copies import FENCE_HEADER
from pipeline.delivery.record import Delivery
from pipeline.endpoints.model import Endpoint
from pipeline.events.codec import decode
from pipeline.events.registry import SchemaRegistry, default_registry
from pipeline.exceptions import InvalidInput, PublishError, VelourcityError
from pipeline.fanout import fan_out
from pipeline.kafka.config import producer_config
from pipeline.kafka.connection import librdkafka_config
from pipeline.kafka_retry import retrying
from pipeline.settings import Settings
from pipeline.topics import DELIVERIES

FANOUT_APP = "velourcity-webhooks"
"""The Faust app id of :func:`pipeline.worker.create_app`, which is the fan-out group's id."""

Partition = tuple[str, int]


class GroupHasMembers(VelourcityError):
    """The fan-out group has active members: resetting its offsets now would be undone by
    their next commit (and the broker refuses it anyway)."""


# What to replay (pure) ----------------------------------------------------------------------


def check_window(since_ms: int, until_ms: int | None) -> None:
    """An empty or inverted window is an operator's typo, never a request for nothing."""
    if until_ms is not None and until_ms <= since_ms:
        raise InvalidInput("--until must be later than --since")


NO_TARGET = (
    "say whose events to replay: --account ID or --endpoint ID "
    "(or --reset-offsets to replay everything through the fan-out group)"
)


def check_arguments(
    *, reset: bool, account_id: str | None, endpoint_id: str | None, until_given: bool
) -> None:
    """Refuse option combinations that have no meaning, before touching the broker."""
    if reset and (account_id is not None or endpoint_id is not None or until_given):
        raise InvalidInput(
            "--reset-offsets replays everything since --since for every account: "
            "it cannot be combined with --account, --endpoint or --until"
        )
    if not reset and account_id is None and endpoint_id is None:
        raise InvalidInput(NO_TARGET)


@dataclass(frozen=True, slots=True)
class Target:
    """Whose events to replay, and to which endpoints."""

    account_id: str
    endpoints: tuple[Endpoint, ...]
    """The account's endpoints (or the one named); :func:`fan_out` still applies ``wants``."""


def resolve_target(
    endpoints: Mapping[str, Endpoint], *, account_id: str | None, endpoint_id: str | None
) -> Target:
    """The target for ``--account`` / ``--endpoint``. An endpoint implies its account; both
    given must agree, so a mistyped id never replays another partner's events."""
    if endpoint_id is None:
        if account_id is None:
            raise InvalidInput(NO_TARGET)
        own = tuple(e for e in endpoints.values() if e.account_id == account_id and e.enabled)
        if not own:
            raise InvalidInput(f"account {account_id!r} has no enabled endpoint: nothing to replay")
        return Target(account_id=account_id, endpoints=own)
    endpoint = endpoints.get(endpoint_id)
    if endpoint is None:
        raise InvalidInput(f"unknown endpoint {endpoint_id!r}")
    if account_id is not None and endpoint.account_id != account_id:
        raise InvalidInput(
            f"endpoint {endpoint_id} belongs to account {endpoint.account_id}, not {account_id}"
        )
    if not endpoint.enabled:
        raise InvalidInput(f"endpoint {endpoint_id} is disabled: enable it first")
    return Target(account_id=endpoint.account_id, endpoints=(endpoint,))


def replay_deliveries(
    value: bytes | None, target: Target, registry: SchemaRegistry
) -> list[Delivery]:
    """The deliveries one domain record yields for ``target``, marked ``replay``; the same
    delivery ids as the first fan-out. Raises whatever the worker would quarantine for."""
    decoded = decode(value, registry)
    if decoded.event.get("account_id") != target.account_id:
        return []
    return [d.replace(replay=True) for d in fan_out(decoded, target.endpoints)]


# Reading a window of the domain topics ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Range:
    """Offsets ``[start, stop)`` of one partition: the records of the window."""

    topic: str
    partition: int
    start: int
    stop: int


def domain_topics(settings: Settings) -> list[str]:
    return [settings.topic(settings.orders_topic), settings.topic(settings.payments_topic)]


def _consumer(settings: Settings) -> KafkaConsumer:
    # librdkafka insists on a group id; this one is never joined (assign) nor committed to.
    return KafkaConsumer(
        {
            **librdkafka_config(settings),
            "group.id": f"velourcity-replay-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
        }
    )


def _partitions(consumer: KafkaConsumer, topics: list[str]) -> list[Partition]:
    found: list[Partition] = []
    for topic in topics:
        info = retrying(functools.partial(_metadata, consumer, topic), what="metadata")
        if info.error is not None or not info.partitions:
            raise VelourcityError(f"cannot read topic {topic}: {info.error or 'no partitions'}")
        found.extend((topic, p) for p in sorted(info.partitions))
    return found


def _metadata(consumer: KafkaConsumer, topic: str) -> Any:
    return consumer.list_topics(topic, timeout=30).topics[topic]


def offsets_at(
    consumer: KafkaConsumer, partitions: list[Partition], at_ms: int
) -> dict[Partition, int]:
    """The first offset at or after ``at_ms`` per partition; its end offset when it has no
    record that late (as ``kafka-consumer-groups --to-datetime`` does)."""
    asked = [TopicPartition(t, p, at_ms) for t, p in partitions]
    found = retrying(lambda: consumer.offsets_for_times(asked, timeout=30), what="offsets")
    offsets = {}
    for tp in found:
        if tp.error is not None:
            raise KafkaException(tp.error)
        offsets[(tp.topic, tp.partition)] = (
            tp.offset if tp.offset >= 0 else end_offset(consumer, (tp.topic, tp.partition))
        )
    return offsets


def end_offset(consumer: KafkaConsumer, partition: Partition) -> int:
    tp = TopicPartition(*partition)
    _low, high = retrying(lambda: consumer.get_watermark_offsets(tp, timeout=30), what="end")
    return int(high)


def plan(
    consumer: KafkaConsumer, settings: Settings, since_ms: int, until_ms: int | None
) -> list[Range]:
    """The window per domain partition. Without ``until`` it ends at each partition's end
    offset now, so a replay terminates even while events keep coming."""
    partitions = _partitions(consumer, domain_topics(settings))
    starts = offsets_at(consumer, partitions, since_ms)
    if until_ms is None:
        stops = {p: end_offset(consumer, p) for p in partitions}
    else:
        stops = offsets_at(consumer, partitions, until_ms)
    return [Range(t, p, starts[(t, p)], max(starts[(t, p)], stops[(t, p)])) for t, p in partitions]


def read_ranges(consumer: KafkaConsumer, ranges: list[Range]) -> Iterator[Message]:
    """Every record of the ranges, each partition in offset order. A partition is done at its
    first offset at or past ``stop`` (or its end): transaction markers may take ``stop - 1``."""
    pending = {(r.topic, r.partition): r.stop for r in ranges if r.start < r.stop}
    consumer.assign([TopicPartition(r.topic, r.partition, r.start) for r in ranges])
    while pending:
        for message in consumer.consume(500, timeout=1.0):
            key = (message.topic() or "", message.partition() or 0)
            stop = pending.get(key)
            if stop is None:
                continue
            offset = message.offset() or 0
            error = message.error()
            if error is not None and error.code() != KafkaError._PARTITION_EOF:
                raise KafkaException(error)
            if error is None and offset < stop:
                yield message
            last = offset if error is None else offset - 1  # EOF: offset is the end offset
            if last + 1 >= stop:
                del pending[key]
                consumer.pause([TopicPartition(*key)])


@dataclass(slots=True)
class ReplayStats:
    read: int = 0
    skipped: int = 0
    """Records that do not decode into a valid event (the worker quarantined them)."""
    matched: int = 0
    """Events that yield at least one delivery for the target."""
    deliveries: int = 0
    per_partition: Counter[Partition] = field(default_factory=Counter)
    """Matched events per domain partition."""


def replay_events(
    settings: Settings, target: Target, *, since_ms: int, until_ms: int | None, dry_run: bool
) -> tuple[list[Range], ReplayStats]:
    """Fan the target's events of the window out again (produced and acked), or only count
    them with ``dry_run``."""
    check_window(since_ms, until_ms)
    registry = default_registry()
    stats = ReplayStats()
    consumer = _consumer(settings)
    sink = None if dry_run else _DeliverySink(settings)
    try:
        ranges = plan(consumer, settings, since_ms, until_ms)
        for message in read_ranges(consumer, ranges):
            stats.read += 1
            try:
                deliveries = replay_deliveries(message.value(), target, registry)
            except Exception:  # like the worker: bad input is set aside, it never stops a replay
                stats.skipped += 1
                continue
            if not deliveries:
                continue
            stats.matched += 1
            stats.deliveries += len(deliveries)
            stats.per_partition[(message.topic() or "", message.partition() or 0)] += 1
            if sink is not None:
                sink.send(deliveries)
        if sink is not None:
            sink.flush()
    finally:
        consumer.close()
    return ranges, stats


class _DeliverySink:
    """A batched, idempotent producer to the deliveries topic that raises unless every record
    was acknowledged."""

    def __init__(self, settings: Settings) -> None:
        self._topic = settings.topic(DELIVERIES)
        self._producer = Producer(producer_config(settings, **{"linger.ms": 20}))
        self._errors: list[str] = []

    def send(self, deliveries: list[Delivery]) -> None:
        for delivery in deliveries:
            self._produce(delivery.endpoint_id.encode(), delivery.to_bytes())

    def _produce(self, key: bytes, value: bytes) -> None:
        while True:
            try:
                self._producer.produce(self._topic, value, key, on_delivery=self._acked)
                break
            except BufferError:  # local queue full: let acks drain it
                self._producer.poll(0.5)
        self._producer.poll(0)

    def _acked(self, error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            self._errors.append(error.str())

    def flush(self) -> None:
        if self._producer.flush(60) or self._errors:
            raise PublishError(f"replay incomplete: {self._errors[:3] or 'timed out'}")


# Resetting the fan-out group ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OffsetReset:
    topic: str
    partition: int
    old: int | None
    """The committed offset before, None when the group had none."""
    new: int


def reset_offsets(settings: Settings, *, since_ms: int, dry_run: bool) -> list[OffsetReset]:
    """Move the fan-out group's committed domain offsets to ``since_ms``; refuses (raises
    :class:`GroupHasMembers`) while a worker is in the group. ``dry_run`` only reports."""
    group = settings.group(FANOUT_APP)
    admin = AdminClient(librdkafka_config(settings))
    members = active_members(admin, group)
    if members:
        raise GroupHasMembers(
            f"consumer group {group} has {members} active member(s): stop every "
            "`velourcity worker` first (or wait for the group's session timeout)"
        )
    consumer = _consumer(settings)
    try:
        partitions = _partitions(consumer, domain_topics(settings))
        new = offsets_at(consumer, partitions, since_ms)
        fenced = _partitions(consumer, [settings.topic(DELIVERIES)])
    finally:
        consumer.close()
    old = _committed(admin, group, partitions)
    resets = [OffsetReset(t, p, old.get((t, p)), new[(t, p)]) for t, p in partitions]
    if not dry_run:
        _fence(settings, fenced)
        _alter(admin, group, resets)
    return resets


def _fence(settings: Settings, partitions: list[Partition]) -> None:
    """Tell the senders the fan-out records that follow are a replay, not copies of the ones
    before (:mod:`pipeline.delivery.copies`): one empty record per deliveries partition."""
    producer = Producer({**librdkafka_config(settings), "acks": "all"})
    errors: list[str] = []
    for topic, partition in partitions:
        producer.produce(
            topic,
            b"",
            partition=partition,
            headers=[(FENCE_HEADER, b"replay")],
            on_delivery=lambda err, _m: errors.append(err.str()) if err else None,
        )
    if producer.flush(30) or errors:
        raise VelourcityError(f"writing the replay fences failed: {errors or 'timed out'}")


def active_members(admin: AdminClient, group: str) -> int:
    """How many members the group has now (0 for a group that does not exist)."""
    future = admin.describe_consumer_groups([group], request_timeout=30)[group]
    try:
        description = future.result()
    except KafkaException as exc:
        if exc.args and exc.args[0].code() == KafkaError.GROUP_ID_NOT_FOUND:
            return 0
        raise
    return len(description.members)


def _committed(admin: AdminClient, group: str, partitions: list[Partition]) -> dict[Partition, int]:
    asked = ConsumerGroupTopicPartitions(group, [TopicPartition(t, p) for t, p in partitions])
    answer = admin.list_consumer_group_offsets([asked], request_timeout=30)[group].result()
    return {
        (tp.topic, tp.partition): tp.offset
        for tp in answer.topic_partitions
        if tp.offset != OFFSET_INVALID and tp.offset >= 0
    }


def _alter(admin: AdminClient, group: str, resets: list[OffsetReset]) -> None:
    wanted = [TopicPartition(r.topic, r.partition, r.new) for r in resets]
    request = ConsumerGroupTopicPartitions(group, wanted)
    answer = admin.alter_consumer_group_offsets([request], request_timeout=30)[group].result()
    failed = [
        f"{tp.topic}[{tp.partition}]: {tp.error}" for tp in answer.topic_partitions if tp.error
    ]
    if failed:
        raise VelourcityError(f"resetting {group} failed: {'; '.join(failed)}")
