"""A bad endpoint must not hurt the good ones, and a waiting retry must not hold up anything
else: real broker, real worker processes, real sockets on 127.0.0.1."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from test_delivery import publish, register

from pipeline.delivery.record import Delivery
from pipeline.events.samples import sample_event
from pipeline.topics import create_topics, retry_topic_name

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]


class HangingServer:
    """Accepts connections and reads requests, and never answers any of them."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=100)
        self._held: list[socket.socket] = []
        self.first_request_at: float | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}/webhooks"

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._held)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._held.append(conn)
                if self.first_request_at is None:
                    self.first_request_at = time.monotonic()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self._listener.close()
        self._thread.join(5)
        with self._lock:
            for conn in self._held:
                conn.close()


@pytest.fixture
def hanging() -> Iterator[HangingServer]:
    server = HangingServer()
    yield server
    server.close()


def test_hanging_endpoint_does_not_hold_up_a_healthy_one_on_the_same_partition(
    settings_factory, receiver_factory, worker_factory, hanging, read_topic
) -> None:
    # One delivery partition, so both endpoints' deliveries interleave on it.
    settings = settings_factory(
        delivery_partitions=1,
        http_timeout=20,
        endpoint_max_in_flight=2,
        endpoint_max_queued=20,
        retry_schedule="1,2",
    )
    create_topics(settings)
    healthy = receiver_factory()
    stuck = register(settings, "acct_a", hanging.url)
    register(settings, "acct_a", healthy.url)
    worker = worker_factory(settings)

    events = [sample_event("order.created", "acct_a") for _ in range(60)]
    published_at = time.monotonic()
    publish(settings, events)
    got = healthy.wait_for(len(events), timeout=60)
    done_at = time.monotonic()
    print(f"healthy: {len(events)} deliveries {done_at - published_at:.2f}s after publishing")

    # Every healthy delivery arrived while the hanging endpoint's first request was still
    # open: none of them waited for its timeout.
    assert hanging.first_request_at is not None
    assert done_at - hanging.first_request_at < settings.http_timeout
    assert {r.headers["X-Velourcity-Event-Id"] for r in got} == {e["id"] for e in events}
    # The hanging endpoint holds at most its own share of the worker's requests ...
    assert hanging.open_connections <= settings.endpoint_max_in_flight
    # ... and a bounded queue: the rest of its deliveries were deferred, not tried (the
    # attempt number is still 1), until it may have room: it has not answered for longer than
    # the first tier, so they wait in the breaker cool-down's tier, not a first tier each round.
    tier = retry_topic_name(settings, settings.breaker_cooldown)
    deferred = [Delivery.from_bytes(r.value()) for r in read_topic(tier, 10)]
    assert {d.attempt for d in deferred} == {1}
    assert {d.endpoint_id for d in deferred} == {stuck.id}
    assert "Traceback" not in worker.log()


def test_a_retry_waiting_in_its_tier_does_not_hold_up_first_tries(
    settings_factory, receiver_factory, worker_factory
) -> None:
    settings = settings_factory(delivery_partitions=1, retry_schedule="30")
    create_topics(settings)
    flaky = receiver_factory(lambda _r, n: (500, {}) if n == 0 else (200, {}))
    healthy = receiver_factory()
    register(settings, "acct_a", flaky.url)
    worker_factory(settings)
    publish(settings, [sample_event("order.created", "acct_a")])
    flaky.wait_for(1)  # the first try failed: its retry now waits 24-36 s in the 30 s tier

    register(settings, "acct_b", healthy.url)
    time.sleep(1)  # the endpoint reaches the worker's cache
    publish(settings, [sample_event("order.created", "acct_b")])
    healthy.wait_for(1, timeout=15)  # well before the waiting retry is due
    assert len(flaky.requests) == 1
    flaky.wait_for(2, timeout=60)  # and the retry still comes when due
    assert flaky.requests[1].headers["X-Velourcity-Delivery-Attempt"] == "2"
