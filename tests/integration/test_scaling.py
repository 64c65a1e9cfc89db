"""Workers join and leave mid-stream (1 → 3 → 2): the groups rebalance and every (event,
endpoint) pair is delivered; duplicates are counted and printed."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from pipeline.endpoints import EndpointWriter, new_endpoint
from pipeline.events.samples import sample_event
from pipeline.publisher import Publisher
from pipeline.topics import create_topics

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]

ACCOUNTS = 6
EVENTS = 3000


def test_workers_join_and_leave_mid_stream_and_nothing_is_lost(
    settings_factory, receiver_factory, worker_factory
) -> None:
    settings = settings_factory(domain_partitions=6, delivery_partitions=6)
    create_topics(settings)
    delivered: Counter[tuple[str, str]] = Counter()
    lock = threading.Lock()

    def respond(request, _n):
        with lock:
            delivered[
                (request.headers["webhook-id"], request.headers["X-Velourcity-Delivery-Id"])
            ] += 1
        return 200, {}

    receiver = receiver_factory(respond)
    writer = EndpointWriter(settings)
    for n in range(ACCOUNTS):
        writer.put(new_endpoint(settings, account_id=f"acct_{n}", url=receiver.url))
    workers = [worker_factory(settings)]

    events = [sample_event("order.created", f"acct_{n % ACCOUNTS}") for n in range(EVENTS)]

    def publish_steadily() -> None:  # about 15 s of traffic
        with Publisher(settings) as publisher:
            for i, event in enumerate(events):
                publisher.send(event)
                if i % 100 == 99:
                    publisher.flush()
                    time.sleep(0.5)
            publisher.flush()

    publisher = threading.Thread(target=publish_steadily)
    publisher.start()
    time.sleep(4)
    workers += [worker_factory(settings), worker_factory(settings)]  # 1 → 3
    time.sleep(6)
    assert workers[0].stop() == 0  # 3 → 2: SIGTERM drains and leaves the group
    publisher.join()

    wanted = {e["id"] for e in events}
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        with lock:
            got = {webhook_id for webhook_id, _ in delivered}
        if wanted <= got:
            break
        time.sleep(0.5)
    with lock:
        got = {webhook_id for webhook_id, _ in delivered}
        duplicates = sum(n - 1 for n in delivered.values())
    print(
        f"\n{EVENTS} events over 1 → 3 → 2 workers: delivered {len(got & wanted)}, "
        f"duplicates {duplicates} ({duplicates / EVENTS:.1%})"
    )
    assert not wanted - got, f"{len(wanted - got)} events never delivered"
    for worker in workers[1:]:
        assert "Traceback" not in worker.log()
