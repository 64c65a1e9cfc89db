"""Retrying the broker's transient refusals.

A partition that was just created, or whose leader just moved, answers requests such as
offsets-for-times with NOT_LEADER_FOR_PARTITION or LEADER_NOT_AVAILABLE for a moment, even
after metadata names its leader. Those errors say "retry"; giving up on them would stop a
reader thread for good.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import structlog
from confluent_kafka import KafkaError, KafkaException

log = structlog.get_logger(__name__)
T = TypeVar("T")

# librdkafka does not flag these as retriable on every call (offsets-for-times among them),
# though each says "the cluster is settling; ask again".
_SETTLING = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError._TIMED_OUT,
        KafkaError._TRANSPORT,
    }
)


def retrying(call: Callable[[], T], *, what: str, seconds: float = 60.0) -> T:
    """``call()``, again after a short pause while it fails with a retriable Kafka error."""
    deadline = time.monotonic() + seconds
    pause = 0.1
    while True:
        try:
            return call()
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            retriable = isinstance(error, KafkaError) and (
                error.retriable() or error.code() in _SETTLING
            )
            if not retriable or time.monotonic() + pause > deadline:
                raise
            log.info("broker not ready; retrying", what=what, error=str(error))
            time.sleep(pause)
            pause = min(pause * 2, 2.0)
