"""Ordered endpoints on a real broker, worker and receivers: an order's events arrive in order
while one of them is being retried, other orders and endpoints keep flowing, and a worker
killed mid-stream (SIGKILL) and restarted neither breaks the order nor loses an event."""

from __future__ import annotations

import hashlib
import threading
import time

import orjson
import pytest
from test_delivery import publish

from pipeline.endpoints import Endpoint, EndpointWriter, new_endpoint
from pipeline.events.samples import sample_event
from pipeline.settings import Settings
from pipeline.topics import create_topics

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]

LIFECYCLE = ["order.created", "order.driver_assigned", "order.picked_up", "order.delivered"]


def _order(account: str, order_id: str) -> list[dict]:
    return [sample_event(t, account, order_id=order_id) for t in LIFECYCLE]


def _endpoint(settings: Settings, url: str, *, ordered: bool) -> Endpoint:
    endpoint = new_endpoint(settings, account_id="acct_o", url=url, ordered=ordered)
    return EndpointWriter(settings).put(endpoint)


class Log:
    """Every request an endpoint got, in arrival order: (event id, status, monotonic time)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: list[tuple[str, int, float]] = []

    def add(self, event_id: str, status: int) -> None:
        with self.lock:
            self.entries.append((event_id, status, time.monotonic()))

    def delivered(self) -> set[str]:
        with self.lock:
            return {e for e, status, _ in self.entries if status == 200}

    def first_success_at(self, event_id: str) -> float:
        return min(t for e, status, t in self.entries if e == event_id and status == 200)


def assert_in_order(log: Log, orders: list[list[dict]]) -> None:
    """No attempt of an order's event before every earlier event of it had succeeded."""
    position = {e["id"]: (i, k) for i, events in enumerate(orders) for k, e in enumerate(events)}
    succeeded: set[str] = set()
    for event_id, status, _ in log.entries:
        order, k = position[event_id]
        earlier = {e["id"] for e in orders[order][:k]}
        missing = earlier - succeeded
        assert not missing, f"event {k} of order {order} tried before {len(missing)} earlier"
        if status == 200:
            succeeded.add(event_id)


def _wait(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)


def test_an_order_waits_for_its_retried_event_while_others_flow(
    settings_factory, receiver_factory, worker_factory
) -> None:
    settings = settings_factory(retry_schedule="1,1,1,1,1", breaker_failures=1000)
    create_topics(settings)
    x, y = _order("acct_o", "ord_x"), _order("acct_o", "ord_y")
    stuck = x[1]["id"]  # the 2nd event of order X fails twice
    ordered_log, plain_log = Log(), Log()

    def ordered(request, _count):
        event_id = orjson.loads(request.body)["id"]
        failures = sum(e == stuck for e, _, _ in ordered_log.entries)
        status = 500 if event_id == stuck and failures < 2 else 200
        ordered_log.add(event_id, status)
        return status, {}

    def plain(request, _count):
        plain_log.add(orjson.loads(request.body)["id"], 200)
        return 200, {}

    _endpoint(settings, receiver_factory(ordered).url, ordered=True)
    _endpoint(settings, receiver_factory(plain).url, ordered=False)
    worker = worker_factory(settings)
    interleaved = [e for pair in zip(x, y, strict=True) for e in pair]
    publish(settings, interleaved)

    everything = {e["id"] for e in interleaved}
    _wait(lambda: ordered_log.delivered() >= everything, 90)
    _wait(lambda: plain_log.delivered() >= everything, 30)
    assert ordered_log.delivered() == everything
    assert plain_log.delivered() == everything

    assert_in_order(ordered_log, [x, y])
    assert [e for e, status, _ in ordered_log.entries if e == stuck] == [stuck] * 3
    # Order X's first event went at once, the rest waited for the retried one, in order.
    x_ids = [e["id"] for e in x]
    assert [e for e, _, _ in ordered_log.entries if e in x_ids and e != stuck] == [
        x_ids[0],
        x_ids[2],
        x_ids[3],
    ]
    # While it was retried, order Y (same endpoint) and the other endpoint (order X too)
    # were all delivered: nothing waited for it but order X's later events.
    released = ordered_log.first_success_at(stuck)
    assert all(ordered_log.first_success_at(e["id"]) < released for e in y)
    assert all(plain_log.first_success_at(e["id"]) < released for e in interleaved)
    assert "Traceback" not in worker.log()


def _fails_first(event_id: str) -> bool:
    """About one event in four fails its first try (so queues hold parked deliveries)."""
    return hashlib.sha256(event_id.encode()).digest()[0] < 64


def test_a_killed_worker_keeps_the_order_and_loses_nothing(
    settings_factory, receiver_factory, worker_factory
) -> None:
    settings = settings_factory(retry_schedule="1,1,1,1,1,1,1,1", breaker_failures=1000)
    create_topics(settings)
    orders = [_order("acct_o", f"ord_{n:03d}") for n in range(40)]
    log = Log()
    failed_once: set[str] = set()

    def respond(request, _count):
        event_id = orjson.loads(request.body)["id"]
        time.sleep(0.01)  # the stream takes a while: the kill lands in the middle of it
        status = 200
        if _fails_first(event_id) and event_id not in failed_once:
            failed_once.add(event_id)
            status = 500
        log.add(event_id, status)
        return status, {}

    _endpoint(settings, receiver_factory(respond).url, ordered=True)
    first = worker_factory(settings)
    # Events of different orders interleaved, each order's in its own sequence.
    stream = [order[k] for k in range(len(LIFECYCLE)) for order in orders]
    publish(settings, stream)

    _wait(lambda: len(log.delivered()) >= len(stream) // 3, 90)
    first.kill()  # SIGKILL: no drain, no commit
    killed_at = len(log.entries)
    assert killed_at < len(stream) + len(failed_once), "the kill came after the end"
    worker_factory(settings)

    wanted = {e["id"] for e in stream}
    _wait(lambda: log.delivered() >= wanted, 180)
    missing = wanted - log.delivered()
    assert not missing, f"{len(missing)} events never delivered"
    assert_in_order(log, orders)
    successes = sum(status == 200 for _, status, _ in log.entries)
    print(
        f"\n{len(stream)} events in {len(orders)} orders, killed after {killed_at} requests; "
        f"{len(failed_once)} first tries failed on purpose; duplicates {successes - len(wanted)}"
    )
