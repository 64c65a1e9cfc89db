"""Every topic the pipeline uses, with its partition count and config, and how to create them.

Names carry ``settings.topic_prefix`` so several stacks can share one broker.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from pipeline.exceptions import ConfigurationError
from pipeline.kafka.connection import librdkafka_config
from pipeline.settings import Settings

ENDPOINTS = "velourcity.endpoints"
ACCOUNTS = "velourcity.accounts"
ENDPOINT_HEALTH = "velourcity.endpoint-health"
DELIVERIES = "velourcity.deliveries"
ATTEMPTS = "velourcity.attempts"
DEAD_LETTERS = "velourcity.dead-letters"
QUARANTINE = "velourcity.quarantine"
ORDERING = "velourcity.ordering"
"""Ordered endpoints' queues (key ``endpoint id|order id``): see pipeline.delivery.ordering."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


def retry_topic_name(settings: Settings, delay_seconds: float) -> str:
    """The retry tier topic for one delay, e.g. ``velourcity.deliveries.retry.300s``."""
    return settings.topic(f"{DELIVERIES}.retry.{delay_seconds:g}s")


def retry_tiers(settings: Settings) -> list[float]:
    """The delays of the retry tier topics, shortest first: the retry schedule's, and the
    breaker's cool-down, where deliveries wait behind an open breaker for its probe."""
    return sorted(set(settings.retry_schedule) | {settings.breaker_cooldown})


def pipeline_topics(settings: Settings) -> list[TopicSpec]:
    t = settings.topic
    history = {"retention.ms": str(int(settings.history_retention_days * 86_400_000))}
    specs = [
        TopicSpec(name=t(settings.orders_topic), partitions=settings.domain_partitions),
        TopicSpec(name=t(settings.payments_topic), partitions=settings.domain_partitions),
        TopicSpec(
            name=t(ENDPOINTS),
            partitions=settings.internal_partitions,
            config={"cleanup.policy": "compact", "min.compaction.lag.ms": "0"},
        ),
        TopicSpec(
            name=t(ACCOUNTS),
            partitions=settings.internal_partitions,
            config={"cleanup.policy": "compact", "min.compaction.lag.ms": "0"},
        ),
        TopicSpec(name=t(DELIVERIES), partitions=settings.delivery_partitions, config=history),
        TopicSpec(name=t(ATTEMPTS), partitions=settings.delivery_partitions, config=history),
        TopicSpec(
            name=t(ENDPOINT_HEALTH),
            partitions=settings.internal_partitions,
            config={"cleanup.policy": "compact", "min.compaction.lag.ms": "0"},
        ),
        TopicSpec(
            name=t(ORDERING),
            partitions=settings.internal_partitions,
            config={"cleanup.policy": "compact", "min.compaction.lag.ms": "0"},
        ),
        TopicSpec(name=t(DEAD_LETTERS), partitions=settings.internal_partitions),
        TopicSpec(name=t(QUARANTINE), partitions=settings.internal_partitions),
    ]
    for delay in retry_tiers(settings):
        specs.append(
            TopicSpec(
                name=retry_topic_name(settings, delay), partitions=settings.delivery_partitions
            )
        )
    return specs


def replication(settings: Settings, brokers: int) -> tuple[int, int]:
    """``(replication factor, min.insync.replicas)`` for topics on a cluster of ``brokers``:
    the settings when given; else 3 and 2 on three brokers or more (one broker may die, or
    restart, and producers with ``acks=all`` carry on without losing an acknowledged record),
    1 and 1 on a smaller one (development)."""
    factor = settings.replication_factor or (3 if brokers >= 3 else 1)
    min_insync = settings.min_insync_replicas or (2 if factor >= 3 else 1)
    if min_insync > factor:
        raise ConfigurationError(
            f"VELOURCITY_MIN_INSYNC_REPLICAS={min_insync} is more than the replication factor "
            f"{factor}: no write could ever be acknowledged"
        )
    return factor, min_insync


def create_topics(settings: Settings, *, timeout: float = 30.0) -> dict[str, str]:
    """Create each pipeline topic that does not exist yet; return ``{name: "created"|"exists"}``."""
    admin = AdminClient(librdkafka_config(settings))
    brokers = len(admin.list_topics(timeout=timeout).brokers)
    factor, min_insync = replication(settings, brokers)
    new = [
        NewTopic(
            s.name,
            num_partitions=s.partitions,
            replication_factor=factor,
            config=s.config | {"min.insync.replicas": str(min_insync)},
        )
        for s in pipeline_topics(settings)
    ]
    result: dict[str, str] = {}
    for name, future in admin.create_topics(new, operation_timeout=timeout).items():
        try:
            future.result(timeout=timeout)
            result[name] = "created"
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
            result[name] = "exists"
    _wait_for_leaders(admin, list(result), timeout)
    return result


def _wait_for_leaders(admin: AdminClient, names: list[str], timeout: float) -> None:
    """A new topic takes produce and fetch requests only once every partition has a leader;
    wait for that, so callers can use the topics straight away."""
    deadline = time.monotonic() + timeout
    while True:
        topics = admin.list_topics(timeout=timeout).topics
        waiting = [
            name
            for name in names
            if name not in topics
            or topics[name].error is not None
            or any(p.leader < 0 or p.error is not None for p in topics[name].partitions.values())
        ]
        if not waiting:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics without a partition leader after {timeout:g}s: {waiting}")
        time.sleep(0.1)
