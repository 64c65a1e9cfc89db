"""The quarantine topic: input the pipeline could not take (undecodable or invalid records),
and deliveries a bug of ours stopped too often, each kept untouched with where it came from
and why in its headers. ``velourcity quarantine list`` shows them, ``velourcity quarantine
redrive`` writes them back to the topic they came from (after a fix)."""

from __future__ import annotations

import time

from pipeline.kafka.producer import Output
from pipeline.settings import Settings
from pipeline.topics import QUARANTINE

REASON = "velourcity-quarantine-reason"
ERROR = "velourcity-quarantine-error"
SOURCE_TOPIC = "velourcity-source-topic"
SOURCE_PARTITION = "velourcity-source-partition"
SOURCE_OFFSET = "velourcity-source-offset"
AT = "velourcity-quarantined-at"


def quarantine_record(
    settings: Settings,
    *,
    value: bytes | None,
    key: bytes | None,
    topic: str,
    partition: int,
    offset: int,
    reason: str,
    error: str,
) -> Output:
    """The original bytes, untouched, with where they came from and why in the headers."""
    headers = (
        (REASON, reason.encode()),
        (ERROR, error[:1000].encode()),
        (SOURCE_TOPIC, topic.encode()),
        (SOURCE_PARTITION, str(partition).encode()),
        (SOURCE_OFFSET, str(offset).encode()),
        (AT, str(int(time.time() * 1000)).encode()),
    )
    return Output(settings.topic(QUARANTINE), key or b"", value or b"", headers)
