"""The fan-out agent's body (pipeline/worker.py FanoutBatch), without a broker: bad input is
quarantined at once, a bug of ours is retried with a growing backoff and then quarantined as
``internal_error``, and one event's trouble never costs the others of its batch."""

from __future__ import annotations

import asyncio
import random
from types import SimpleNamespace
from typing import Any

from pipeline.delivery.handler import INTERNAL_RETRIES
from pipeline.delivery.record import Delivery
from pipeline.endpoints.model import Endpoint, new_secret
from pipeline.events import default_registry, encode
from pipeline.events.samples import sample_event
from pipeline.quarantine import ERROR, REASON
from pipeline.settings import Settings
from pipeline.topics import DELIVERIES, QUARANTINE
from pipeline.worker import INTERNAL_BACKOFF, FanoutBatch

SETTINGS = Settings(topic_prefix="t-")
REGISTRY = default_registry()


def endpoint(endpoint_id: str) -> Endpoint:
    return Endpoint(
        id=endpoint_id,
        account_id="acct_1",
        url=f"https://hooks.example.com/{endpoint_id}",
        event_types=None,
        secret=new_secret(),
        created_at=1_760_000_000_000,
        updated_at=1_760_000_000_000,
    )


def event(value: bytes, offset: int, headers: Any = None) -> Any:
    message = SimpleNamespace(
        value=value,
        key=b"k",
        topic="t-orders",
        partition=0,
        offset=offset,
        headers=headers if headers is not None else [],  # faust gives a list (or a dict)
    )
    return SimpleNamespace(message=message)


def order_created(seed: int) -> bytes:
    sample = sample_event("order.created", "acct_1", rng=random.Random(seed))
    return encode(sample, REGISTRY.current("order.created"))


class Endpoints:
    """``for_account`` that fails (a bug of ours) the first ``failures`` calls."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.calls = 0

    def for_account(self, account_id: str) -> tuple[Endpoint, ...]:
        self.calls += 1
        if self.calls <= self.failures:
            raise RuntimeError("endpoint cache broken")
        return (endpoint("ep_1"), endpoint("ep_2"))


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def reasons(outputs: list[Any]) -> list[str]:
    return [dict(o.headers)[REASON].decode() for o in outputs if o.topic == "t-" + QUARANTINE]


async def run(batch: FanoutBatch, events: list[Any]) -> list[Any]:
    return await batch(events)


def test_each_event_becomes_a_delivery_per_endpoint() -> None:
    outputs = asyncio.run(
        run(FanoutBatch(SETTINGS, REGISTRY, Endpoints()), [event(order_created(1), 0)])
    )
    assert [o.topic for o in outputs] == ["t-" + DELIVERIES] * 2
    deliveries = [Delivery.from_bytes(o.value) for o in outputs]
    assert sorted(d.endpoint_id for d in deliveries) == ["ep_1", "ep_2"]
    assert all(o.key == d.endpoint_id.encode() for o, d in zip(outputs, deliveries, strict=True))


TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_the_events_traceparent_travels_with_each_delivery() -> None:
    # tracing is off here: the event's own context is passed on unchanged
    for headers in ([("traceparent", TRACEPARENT.encode())], {"traceparent": TRACEPARENT}):
        outputs = asyncio.run(
            run(
                FanoutBatch(SETTINGS, REGISTRY, Endpoints()),
                [event(order_created(5), 0, headers)],
            )
        )
        assert [Delivery.from_bytes(o.value).traceparent for o in outputs] == [TRACEPARENT] * 2
    malformed = [("traceparent", b"not-a-traceparent")]
    outputs = asyncio.run(
        run(FanoutBatch(SETTINGS, REGISTRY, Endpoints()), [event(order_created(6), 0, malformed)])
    )
    assert [Delivery.from_bytes(o.value).traceparent for o in outputs] == [None, None]


def test_bad_input_is_quarantined_at_once_and_the_rest_of_the_batch_goes_on() -> None:
    sleeps = Sleeps()
    batch = FanoutBatch(SETTINGS, REGISTRY, Endpoints(), sleep=sleeps)
    outputs = asyncio.run(run(batch, [event(b"\x00garbage", 0), event(order_created(2), 1)]))
    assert reasons(outputs) == ["missing_header"]  # not the single-object encoding
    assert sum(o.topic == "t-" + DELIVERIES for o in outputs) == 2
    assert sleeps.waits == []  # not retried: the input is at fault


def test_a_bug_of_ours_is_retried_with_backoff_and_the_event_delivered() -> None:
    sleeps = Sleeps()
    endpoints = Endpoints(failures=2)
    batch = FanoutBatch(SETTINGS, REGISTRY, endpoints, sleep=sleeps)
    outputs = asyncio.run(run(batch, [event(order_created(3), 0)]))
    assert reasons(outputs) == []
    assert sum(o.topic == "t-" + DELIVERIES for o in outputs) == 2
    assert sleeps.waits == [INTERNAL_BACKOFF, INTERNAL_BACKOFF * 4]
    assert endpoints.calls == 3


def test_a_bug_that_persists_quarantines_the_event_as_internal_error() -> None:
    sleeps = Sleeps()
    endpoints = Endpoints(failures=1_000)
    batch = FanoutBatch(SETTINGS, REGISTRY, endpoints, sleep=sleeps)
    value = order_created(4)
    (quarantined,) = asyncio.run(run(batch, [event(value, 7)]))
    assert reasons([quarantined]) == ["internal_error"]
    assert quarantined.value == value  # the original bytes, for redrive once fixed
    headers = {k: v.decode() for k, v in quarantined.headers}
    assert "endpoint cache broken" in headers[ERROR]
    assert endpoints.calls == INTERNAL_RETRIES + 1
    assert sleeps.waits == [INTERNAL_BACKOFF * 4**n for n in range(INTERNAL_RETRIES)]
