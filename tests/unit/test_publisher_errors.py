"""The publisher never drops an event silently: when the broker does not acknowledge events,
``flush`` raises a PublishError that names every one of them (and what was acknowledged)."""

from __future__ import annotations

import pytest

from pipeline.events.samples import sample_event
from pipeline.exceptions import PublishError
from pipeline.publisher import Publisher
from pipeline.settings import Settings


def test_unacknowledged_events_are_named_in_the_error() -> None:
    settings = Settings(kafka_bootstrap="127.0.0.1:9")  # nothing listens there
    publisher = Publisher(
        settings, config={"message.timeout.ms": 300, "log_level": 0, "enable.idempotence": False}
    )
    events = [sample_event("order.created", "acct_1") for _ in range(3)]
    for event in events:
        publisher.send(event)
    with pytest.raises(PublishError) as raised:
        publisher.flush(timeout=10)
    assert sorted(raised.value.failed) == sorted(e["id"] for e in events)
    assert raised.value.published == []
    assert "3 events were not acknowledged" in str(raised.value)
