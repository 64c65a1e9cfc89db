"""7. Broker failover, on the local three-broker cluster over SASL_SSL + SCRAM
(``scripts/kafka-cluster.sh``; topics with three replicas, ``min.insync.replicas=2``).

Two runs, one row each: events flow while the broker leading most deliveries partitions gets
SIGKILL and is started again ``down_for`` seconds later (7a; longer than the brokers' 9 s
session, so the controller fences it and its partitions get new leaders); then the same with
the active KRaft controller (7b; every node is both broker and controller). Beyond the suite's
targets (nothing lost, nothing dead-lettered, no worker traceback or exit), no partition may be
stuck: once everything arrived, each consumer group has committed every partition it reads up
to its end. The workers are up before the first event, so the longest delay is the failover's.
"""

from __future__ import annotations

import threading
import time

from confluent_kafka import Consumer, TopicPartition

from pipeline.kafka.connection import librdkafka_config
from pipeline.replay import FANOUT_APP
from pipeline.topics import DELIVERIES, retry_tiers, retry_topic_name
from velourcity_chaos.cluster import LocalCluster, leaders
from velourcity_chaos.report import Tally
from velourcity_chaos.scenarios import Options, run_pipeline
from velourcity_chaos.stack import Stack, Worker, stack

SENDER_GROUP = "velourcity-sender"


def failover_leader(options: Options) -> Tally:
    return _failover(options, "leader")


def failover_controller(options: Options) -> Tally:
    return _failover(options, "controller")


def _failover(options: Options, victim: str) -> Tally:
    label = "deliveries leader" if victim == "leader" else "active controller"
    tally = Tally(scenario=f"7{'a' if victim == 'leader' else 'b'}. failover: {label}")
    events = options.count(10_000, 1_000)
    rate = options.seconds(250, 100)
    kill_after, down_for = options.seconds(10, 3), options.seconds(30, 12)

    with (
        LocalCluster() as cluster,
        stack(
            cluster.bootstrap, options.directory, name=f"failover-{victim}", **cluster.settings
        ) as run,
    ):
        # the workers are up before the first event: the longest delay is the failover's,
        # not a worker's start (slower over TLS, on three brokers)
        wait_ready([run.start_worker() for _ in range(2)])
        deliveries = run.settings.topic(DELIVERIES)
        led = leaders(run.settings, deliveries)
        node = cluster.controller() if victim == "controller" else max(led, key=led.__getitem__)

        def fault(run: Stack, stop: threading.Event) -> None:
            if stop.wait(kill_after):
                return
            cluster.kill(node)
            killed = time.monotonic()
            tally.notes["SIGKILL"] = (
                f"node {node} ({label}; it led {led.get(node, 0)} of {sum(led.values())} "
                f"deliveries partitions), {kill_after:g} s into the run"
            )
            time.sleep(down_for)
            try:
                cluster.start(node)
            except RuntimeError as exc:  # in the row, not as a thread's traceback
                tally.problems.append(f"node {node} did not come back: {exc}")
                return
            tally.notes["node back, answering again after (s)"] = round(
                time.monotonic() - killed, 1
            )
            tally.notes["deliveries leaders after"] = leaders(run.settings, deliveries)

        run_pipeline(
            run,
            tally,
            events=events,
            rate=rate,
            workers=0,
            fault=fault,
            timeout=options.seconds(480, 150),
        )
        stuck = stuck_partitions(run)
    tally.notes["stuck partitions"] = stuck or "none"
    if "SIGKILL" not in tally.notes:
        tally.problems.append("the node was never killed (the run ended first)")
    if stuck:
        tally.problems.append(f"{len(stuck)} partitions not committed to their end")
    return tally


def wait_ready(workers: list[Worker], timeout: float = 120.0) -> None:
    """Until each worker's fan-out and sender run (their log says so), or raise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        logs = [w.log_path.read_text(errors="replace") for w in workers]
        if all("sender started" in log and "Worker]: Ready" in log for log in logs):
            return
        if not all(w.alive() for w in workers):
            break
        time.sleep(0.5)
    raise RuntimeError(f"the workers did not start within {timeout:g}s")


def stuck_partitions(run: Stack, timeout: float = 30.0) -> list[str]:
    """``group topic[partition]: committed/end`` for each partition a group has not committed
    to its end within ``timeout`` (the fan-out on the domain topics, the sender on deliveries
    and the retry tiers)."""
    settings = run.settings
    reads = {
        settings.group(FANOUT_APP): [
            settings.topic(settings.orders_topic),
            settings.topic(settings.payments_topic),
        ],
        settings.group(SENDER_GROUP): [
            settings.topic(DELIVERIES),
            *(retry_topic_name(settings, d) for d in retry_tiers(settings)),
        ],
    }
    deadline = time.monotonic() + timeout
    while True:
        behind = []
        for group, topics in reads.items():
            consumer = Consumer(librdkafka_config(settings, **{"group.id": group}))
            try:
                for topic in topics:
                    meta = consumer.list_topics(topic, timeout=10).topics[topic]
                    asked = [TopicPartition(topic, p) for p in meta.partitions]
                    for tp in consumer.committed(asked, timeout=10):
                        _low, end = consumer.get_watermark_offsets(tp, timeout=10)
                        committed = max(tp.offset, 0)
                        if committed < end:  # an empty partition (end 0) needs no commit
                            behind.append(f"{group} {topic}[{tp.partition}]: {committed}/{end}")
            finally:
                consumer.close()
        if not behind or time.monotonic() > deadline:
            return behind
        time.sleep(1)


__all__ = ["failover_controller", "failover_leader", "stuck_partitions"]
