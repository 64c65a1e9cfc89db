"""The sender: reads the deliveries topic and every retry tier, makes each record's attempt,
many at once, and commits an offset only when every record before it is finished.

It runs in the worker beside the Faust fan-out agent (as a service of the Faust worker) but
drives its own librdkafka consumer and producer (:mod:`pipeline.kafka`): records come in
batches from the consumer's thread, each is admitted by one pure function
(:func:`~pipeline.delivery.admission.admit`), and per record only the request and its results
are made (sign, POST, produce the attempt log). It needs what a Faust agent does not give:

* **Per-record commits.** A record is *finished* when every record its attempt produced
  (attempt log, retry, dead letter) was acknowledged by the broker. A partition's committed
  offset is its lowest unfinished one (:class:`OffsetTracker`), so a slow request delays a
  commit, never another endpoint's delivery, and a crash never skips an unfinished record.
  Commits follow finished work within ``commit_interval``, and the records finished past the
  committed offset ride along as its metadata: the next owner does not do them again.
  (Faust acks out-of-order completions past records still in flight: faust-streaming #606.)
  What a worker reads when it takes a partition over, so that nothing is done twice, is
  :mod:`pipeline.delivery.handover`.
* **Delays without holding records.** A retry record that is not due yet pauses its
  partition and seeks back to it; the partition resumes when the record is due. Records of a
  fixed-delay tier arrive in due order (up to jitter), so the head record is the next due.
  Nothing waits in memory, so a crash while waiting loses nothing.
* **Rate limits.** An endpoint's ``rate_limit`` spaces its attempts (see
  :mod:`pipeline.delivery.ratelimit` for why one worker's limiter holds for all of them).
* **Bulkheads.** A worker makes at most ``sender_concurrency`` requests at once, one endpoint
  at most ``endpoint_max_in_flight``, with a bounded queue of its own; past that, its
  deliveries are deferred to the first retry tier without using an attempt
  (:mod:`pipeline.delivery.bulkheads`).
* **Ordered endpoints.** An endpoint with ``ordered`` gets an order's deliveries one after the
  other; a later one waits (in memory while the earlier one's attempt is in flight, else in a
  retry tier) without holding up other orders (:mod:`pipeline.delivery.ordered_flow`).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Coroutine
from typing import Any, Protocol

import orjson
import structlog
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2
from confluent_kafka import KafkaException, Message
from mode import Service

from pipeline.delivery.admission import admit
from pipeline.delivery.autodisable import FailureStreaks
from pipeline.delivery.breaker import Breakers, Change
from pipeline.delivery.bulkheads import Bulkheads
from pipeline.delivery.copies import DeliveredBefore, RecentFanouts, marks
from pipeline.delivery.handler import DeliveryHandler
from pipeline.delivery.handover import Handover
from pipeline.delivery.offsets import OffsetTracker
from pipeline.delivery.ordered_flow import OrderedFlow
from pipeline.delivery.ordering import OrderingLog
from pipeline.delivery.ratelimit import RateLimiter
from pipeline.delivery.record import Delivery
from pipeline.delivery.results import NotDone, Results
from pipeline.endpoints.model import Endpoint
from pipeline.health import HealthIndex
from pipeline.kafka.config import consumer_config, producer_config
from pipeline.kafka.consumer import GroupConsumer, Offsets
from pipeline.kafka.producer import AsyncProducer, Output
from pipeline.observability import (
    BREAKER_SKIPS,
    BREAKERS_OPEN,
    CONSUMER_LAG,
    COPIES_SKIPPED,
    DEFERRED,
    ENDPOINTS_DISABLED,
    QUARANTINED,
)
from pipeline.quarantine import quarantine_record
from pipeline.settings import Settings
from pipeline.topics import DELIVERIES, ENDPOINT_HEALTH, retry_tiers, retry_topic_name

log = structlog.get_logger(__name__)


class AccountEndpoints(Protocol):
    def for_account(self, account_id: str) -> tuple[Endpoint, ...]: ...


COMMIT_BACKOFF_MAX = 5.0
"""Longest wait before a failed commit is tried again (seconds)."""
PENDING_PER_REQUEST = 5
"""Records a worker holds (taken, not finished) per request it may make at once."""


def sender_topics(settings: Settings) -> list[str]:
    return [settings.topic(DELIVERIES)] + [
        retry_topic_name(settings, d) for d in retry_tiers(settings)
    ]


class Dispatcher(Service):
    """``velourcity worker``'s sender (see the module's docstring)."""

    def __init__(
        self,
        settings: Settings,
        handler: DeliveryHandler,
        *,
        endpoints: AccountEndpoints | None = None,
        health: HealthIndex | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._settings = settings
        self._handler = handler
        self._endpoints = endpoints
        self._health = health
        self._streaks = FailureStreaks(
            settings.auto_disable_days, health.get if health is not None else lambda _id: None
        )
        """Each endpoint's run of failures without a success (auto-disable)."""
        self._topics = sender_topics(settings)
        self._taken = asyncio.Semaphore(PENDING_PER_REQUEST * settings.sender_concurrency)
        self._bulkheads = Bulkheads(
            concurrency=settings.sender_concurrency,
            in_flight=settings.endpoint_max_in_flight,
            queued=settings.endpoint_max_queued,
        )
        self._tracker: OffsetTracker[TopicPartition] = OffsetTracker()
        self._window_ms = int(settings.duplicate_window * 1000)
        self._fanouts: RecentFanouts[TopicPartition] = RecentFanouts(self._window_ms)
        self._delivered = DeliveredBefore()
        """What the previous owners delivered and had not committed (:mod:`.copies`)."""
        self._deliveries_topic = settings.topic(DELIVERIES)
        self._owned: set[TopicPartition] = set()
        self._jobs: dict[TopicPartition, set[asyncio.Task[None]]] = {}
        self._resume_at: dict[TopicPartition, asyncio.TimerHandle] = {}
        self._breakers = Breakers(
            failures=settings.breaker_failures,
            cooldown=settings.breaker_cooldown,
            on_change=self._breaker_changed,
        )
        self._limiter = RateLimiter()
        self._worker_id = f"{socket.gethostname()}:{os.getpid()}"
        self._background: set[asyncio.Future[Any]] = set()
        self._progress = asyncio.Event()
        """Set when a record finished: the committer commits what moved."""
        self._committer: asyncio.Task[None] | None = None
        self._halting = False
        self._drain_seconds = settings.http_timeout + 5
        self._queues_loaded = asyncio.Event()
        """Clear while an assignment loads the ordered queues: records wait to be taken."""
        self._queues_loaded.set()
        self._source: GroupConsumer | None = None
        self._partition_count: dict[str, int] = {}
        self._tps: dict[tuple[str, int], TopicPartition] = {}
        self._lag_reported = 0.0
        self._results = Results(lambda: AsyncProducer(producer_config(settings)))
        self._flow = OrderedFlow(
            OrderingLog(settings),
            handler,
            self._results,
            tiers=retry_tiers(settings),
            retry_topics=set(self._topics[1:]),
            attempt=self._attempt_ordered,
            halting=lambda: self._halting,
        )
        self._handover = Handover(
            settings,
            group=settings.group("velourcity-sender"),
            tracker=self._tracker,
            fanouts=self._fanouts,
            delivered=self._delivered,
        )
        """What the previous owners of a partition left (:mod:`.handover`)."""

    # Lifecycle (mode.Service) ------------------------------------------------------------

    async def on_start(self) -> None:
        settings = self._settings
        self._results.start()
        self._source = GroupConsumer(
            consumer_config(
                settings,
                group=settings.group("velourcity-sender"),
                # Partition p of every sender topic goes to the same worker (all have the same
                # partition count, and a delivery's key is its endpoint id): one worker handles
                # an endpoint's first tries and retries alike, so its breaker sees every attempt.
                **{"partition.assignment.strategy": "range"},
            ),
            self._topics,
            on_batch=self._take_batch,
            on_assign=self._assigned,
            on_revoke=self._revoked,
        )
        await self._handover.start()
        if (load_health := getattr(self._health, "wait_ready_async", None)) is not None:
            await load_health(60.0)  # failure streaks carry on across restarts
        await self._flow.start()  # ordered queues: loaded at each assignment
        source = self._source
        for topic in self._topics:
            found = await asyncio.to_thread(source.partitions, topic)
            if not found:
                raise RuntimeError(f"topic {topic} does not exist (velourcity topics create)")
            self._partition_count[topic] = len(found)
        source.start()
        self._committer = asyncio.ensure_future(self._commit_progress())
        log.info("sender started", topics=self._topics)

    async def on_stop(self) -> None:
        """Drain: no new attempts; in-flight ones finish (bounded by the HTTP timeout), their
        results are produced and their offsets committed; then leave the group."""
        self._halting = self._results.stopping = True
        if self._committer is not None:
            self._committer.cancel()
        if self._source is not None:
            await self._source.stop()  # its revoke: the jobs finish, their offsets committed
        await self._flow.stop()
        await self._handover.stop()
        await self._results.stop()
        await self._handler.aclose()
        log.info("sender stopped")

    # The loop --------------------------------------------------------------------------

    def _tp(self, topic: str, partition: int) -> TopicPartition:
        tp = self._tps.get((topic, partition))
        if tp is None:
            tp = self._tps[(topic, partition)] = TopicPartition(topic, partition)
        return tp

    async def _take_batch(self, records: list[Message]) -> None:
        """A batch from the consumer's thread, in offset order per partition."""
        stopped: set[TopicPartition] = set()
        for record in records:
            tp = self._tp(record.topic() or "", record.partition() or 0)
            if tp not in stopped and not await self._take(tp, record):
                stopped.add(tp)  # the partition is paused (or no longer ours): skip the rest
        if (now := time.monotonic()) - self._lag_reported > 1.0:
            self._lag_reported = now
            self._report_lag()

    async def _take(self, tp: TopicPartition, record: Message) -> bool:
        """Start the record's job; False when the partition must not go on for now."""
        if not self._queues_loaded.is_set():
            await self._queues_loaded.wait()  # the fetcher may hand records over before that
        owned = tp in self._owned
        offset: int = record.offset() or 0
        written_ms: int = record.timestamp()[1]
        copy_id, fence = (
            marks(record.headers()) if tp.topic == self._deliveries_topic else (None, False)
        )
        if fence:
            self._fanouts.forget([tp])  # a replay follows: what comes after is not a copy
            if owned:
                self._skip(tp, offset)
            return True
        if (
            owned and copy_id is not None and self._fanouts.is_copy(tp, copy_id, offset, written_ms)
        ):  # the fan-out wrote it again, after a crash or rebalance (:mod:`.copies`)
            COPIES_SKIPPED.inc()
            self._skip(tp, offset)
            return True
        if owned and self._tracker.skip(tp, offset):
            self._progress.set()  # its previous owner finished it: not done twice
            return True
        try:
            delivery = Delivery.from_bytes(record.value() or b"")
        except Exception as exc:
            return await self._start(
                tp, offset, None, self._outputs_of(_quarantine(self._settings, record, exc))
            )
        endpoint = self._handler.endpoint(delivery.endpoint_id)
        if owned and self._sent_before(tp, delivery, endpoint, written_ms):
            COPIES_SKIPPED.inc()
            self._skip(tp, offset)
            return True
        endpoint_id = delivery.endpoint_id
        bulkheads = self._bulkheads
        if bulkheads.full(endpoint_id):
            await bulkheads.wait_if_fast(endpoint_id)
        name = self._flow.queue_of(delivery, endpoint)
        admission = admit(
            delivery,
            endpoint,
            now_ms=int(time.time() * 1000),
            ordered=name is not None,
            breaker_wait=self._breakers.wait(endpoint_id),
            taken=bulkheads.held(endpoint_id),
            share=bulkheads.share,
        )
        match admission.kind:
            case "wait":
                self._pause_until_due(tp, offset, admission.wait)
                return False
            case "ordered":
                assert name is not None
                return await self._start(
                    tp, offset, None, None, ordered=(record, delivery, endpoint, name)
                )
            case "behind_breaker":
                # before the endpoint's share: its deliveries wait for the probe, not for a
                # first-tier round (a hanging endpoint's backlog came round every 5 s)
                BREAKER_SKIPS.inc()
                return await self._start(
                    tp, offset, None, self._outputs_of(self._behind_breaker(delivery))
                )
            case "defer":
                log.debug("endpoint busy; deferred", endpoint_id=endpoint_id)
                DEFERRED.inc()
                deferred = self._handler.defer(delivery, at_least=bulkheads.room_in(endpoint_id))
                return await self._start(tp, offset, None, self._outputs_of(deferred))
        if endpoint is not None and endpoint.enabled and not self._breakers.allow(endpoint_id):
            BREAKER_SKIPS.inc()  # half-open: another delivery is the probe
            return await self._start(
                tp, offset, None, self._outputs_of(self._behind_breaker(delivery))
            )
        return await self._start(tp, offset, endpoint_id, None, attempt=(delivery, endpoint))

    async def _start(
        self,
        tp: TopicPartition,
        offset: int,
        endpoint_id: str | None,
        outputs: Coroutine[Any, Any, list[Output]] | None,
        *,
        attempt: tuple[Delivery, Endpoint | None] | None = None,
        ordered: tuple[Message, Delivery, Endpoint | None, str] | None = None,
    ) -> bool:
        """Take the record (within the worker's bound of records held) and start its job."""
        await self._taken.acquire()
        if self._halting or tp not in self._owned:
            self._taken.release()
            if outputs is not None:
                outputs.close()
            return False
        self._tracker.start(tp, offset)
        if attempt is not None:
            delivery, endpoint = attempt
            self._bulkheads.hold(delivery.endpoint_id)
            job = self._finish(tp, offset, endpoint_id, self._attempt(delivery, endpoint))
        elif ordered is not None:
            record, delivery, endpoint, name = ordered
            job = self._take_ordered(tp, record, delivery, endpoint, name)
        else:
            assert outputs is not None
            job = self._finish(tp, offset, None, outputs)
        task = asyncio.ensure_future(job)
        jobs = self._jobs.get(tp)
        if jobs is None:
            jobs = self._jobs[tp] = set()
        jobs.add(task)
        task.add_done_callback(jobs.discard)
        return True

    def _take_ordered(
        self,
        tp: TopicPartition,
        record: Message,
        delivery: Delivery,
        endpoint: Endpoint | None,
        name: str,
    ) -> Coroutine[Any, Any, None]:
        """The job of an ordered endpoint's delivery (:mod:`.ordered_flow`)."""
        endpoint_id = delivery.endpoint_id
        if (home := self._home(tp.topic, endpoint_id)) is not None and tp.partition != home:
            # Sent again by another producer's partitioner (the API's send_again): move it to
            # the endpoint's own partition, whose worker keeps the endpoint's queues.
            moved = Output(tp.topic, endpoint_id.encode(), record.value() or b"")
            return self._finish(tp, record.offset() or 0, None, self._outputs_of([moved]))
        # It joins its queue now, in take order (jobs may start later), deferred or not.
        joined = self._flow.join(name, delivery.delivery_id)
        if self._bulkheads.full(endpoint_id):
            DEFERRED.inc()
            deferred = self._handler.defer(delivery)
            return self._finish(
                tp, record.offset() or 0, None, self._flow.deferred(name, joined, deferred)
            )
        self._bulkheads.hold(endpoint_id)
        return self._finish(
            tp, record.offset() or 0, endpoint_id, self._flow.run(delivery, endpoint, name, joined)
        )

    def _sent_before(
        self, tp: TopicPartition, delivery: Delivery, endpoint: Endpoint | None, written_ms: int
    ) -> bool:
        """Delivered by a previous owner of the partition, which died before committing it.
        Not for an ordered endpoint: its queue must see the delivery settle."""
        if not self._delivered.covers(
            tp.partition, delivery.delivery_id, delivery.attempt, written_ms
        ):
            return False
        return endpoint is None or not endpoint.ordered

    def _skip(self, tp: TopicPartition, offset: int) -> None:
        """Nothing to do for the record (e.g. its request was made already): finished."""
        if not self._tracker.skip(tp, offset):
            self._tracker.start(tp, offset)
            self._tracker.finish(tp, offset)
        self._progress.set()

    def _home(self, topic: str, endpoint_id: str) -> int | None:
        """The partition the endpoint's records go to (murmur2, as every producer of the
        pipeline partitions: :func:`~pipeline.kafka.config.producer_config`)."""
        count = self._partition_count.get(topic)
        if not count:
            return None
        return (int(murmur2(endpoint_id.encode())) & 0x7FFFFFFF) % count

    def _pause_until_due(self, tp: TopicPartition, offset: int, wait: float) -> None:
        assert self._source is not None
        # read it again when due; librdkafka drops what it fetched past it
        self._source.seek(tp.topic, tp.partition, offset)
        self._source.pause(tp.topic, tp.partition)
        if (timer := self._resume_at.pop(tp, None)) is not None:
            timer.cancel()
        self._resume_at[tp] = asyncio.get_running_loop().call_later(wait, self._resume, tp)

    def _resume(self, tp: TopicPartition) -> None:
        self._resume_at.pop(tp, None)
        if self._source is not None and tp in self._owned:
            self._source.resume(tp.topic, tp.partition)

    # One record's job --------------------------------------------------------------------

    async def _attempt_ordered(self, delivery: Delivery, endpoint: Endpoint | None) -> list[Output]:
        if not self._breakers.allow(delivery.endpoint_id):
            BREAKER_SKIPS.inc()
            return self._behind_breaker(delivery)
        return await self._attempt(delivery, endpoint)

    def _behind_breaker(self, delivery: Delivery) -> list[Output]:
        return self._handler.defer(
            delivery, behind_breaker=self._breakers.wait(delivery.endpoint_id)
        )

    async def _attempt(self, delivery: Delivery, endpoint: Endpoint | None) -> list[Output]:
        endpoint_id = delivery.endpoint_id
        try:
            async with self._bulkheads.turn(endpoint_id):
                if self._breakers.state(endpoint_id) == "open":  # opened while this one queued
                    BREAKER_SKIPS.inc()
                    return self._behind_breaker(delivery)
                if endpoint is not None and endpoint.rate_limit:
                    await self._limiter.wait(endpoint_id, endpoint.rate_limit)
                async with self._bulkheads.requests:
                    outputs, result = await self._handler.attempt(delivery, endpoint)
        except Exception as exc:  # our bug, not the endpoint's: no breaker, no auto-disable
            log.exception("delivery handling failed", delivery_id=delivery.delivery_id)
            return self._handler.on_error(delivery, exc)
        if result is None:
            self._breakers.forget(endpoint_id)
        else:
            self._track_failures(endpoint_id, result.ok)
            self._breakers.record(endpoint_id, result.ok)
            self._bulkheads.observe(endpoint_id, result.latency_ms)
        return outputs

    def _track_failures(self, endpoint_id: str, ok: bool) -> None:
        since = self._streaks.record(endpoint_id, ok, int(time.time() * 1000))
        if since is not None:
            self._background_task(self._auto_disable(endpoint_id, since))

    async def _auto_disable(self, endpoint_id: str, failing_since: int) -> None:
        endpoint = self._handler.endpoint(endpoint_id)
        if endpoint is None or not endpoint.enabled or self._endpoints is None:
            return
        others = self._endpoints.for_account(endpoint.account_id)
        if await self._produce(self._handler.auto_disable(endpoint, failing_since, others)):
            ENDPOINTS_DISABLED.inc()
            log.warning("endpoint disabled: failing too long", endpoint_id=endpoint_id)

    def _background_task(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _breaker_changed(self, change: Change) -> None:
        """Log it, count it, and publish it to the endpoint-health topic (the API shows it)."""
        BREAKERS_OPEN.set(self._breakers.open_count())
        log.warning(
            "endpoint breaker " + change.state.replace("_", "-"),
            endpoint_id=change.endpoint_id,
            failures=change.failures,
        )
        health = {
            "endpoint_id": change.endpoint_id,
            "breaker": change.state,
            "consecutive_failures": change.failures,
            "since": int(change.at * 1000),
            "worker": self._worker_id,
            "failing_since": self._streaks.since(change.endpoint_id),
        }
        topic, key = self._settings.topic(ENDPOINT_HEALTH), change.endpoint_id.encode()
        self._results.send_quietly([Output(topic, key, orjson.dumps(health))])

    @staticmethod
    async def _outputs_of(outputs: list[Output]) -> list[Output]:
        return outputs

    async def _finish(
        self, tp: TopicPartition, offset: int, endpoint_id: str | None, outputs: Any
    ) -> None:
        try:
            try:
                results = await outputs
            finally:
                if endpoint_id is not None:
                    # its request is over: the endpoint's share is free while the results are
                    # produced (a slow ack held it, and the endpoint's next deliveries were
                    # deferred to a retry tier for the broker's pace, not the endpoint's)
                    self._bulkheads.release(endpoint_id)
            if await self._produce(results):
                self._tracker.finish(tp, offset)
                self._progress.set()
        except NotDone:
            pass  # unfinished: read again after the restart or rebalance
        finally:
            self._taken.release()

    async def _produce(self, outputs: list[Output]) -> bool:
        return await self._results.produce(outputs)

    # Commits and rebalances --------------------------------------------------------------

    async def _commit_progress(self) -> None:
        """Commit as soon as records finish, at most once per ``commit_interval``: what a
        crash makes the next owner redo is the work of about one interval (plus the requests
        in flight), so the interval is short (0.1 s by default)."""
        failures = 0
        while not self._halting:
            await self._progress.wait()
            self._progress.clear()
            try:
                committed = await self._commit()
            except Exception:  # never end the committer
                log.exception("offset commit failed unexpectedly")
                committed = False
            if committed:
                failures = 0
                await asyncio.sleep(self._settings.commit_interval)
                continue
            # Tried again, backing off, whether or not another record finishes: after the last
            # records of a burst nothing else would (a coordinator moving at a broker failover
            # left every partition's last offsets uncommitted: the chaos suite's scenario 7).
            failures += 1
            self._progress.set()
            wait = self._settings.commit_interval * 2**failures
            await asyncio.sleep(min(COMMIT_BACKOFF_MAX, wait))

    async def _commit(self) -> bool:
        """Commit what finished on the partitions owned; False when the broker refused it."""
        if self._source is None:
            return True
        commits = self._tracker.to_commit_with_metadata(self._owned)
        if not commits:
            return True
        try:
            await self._source.commit({(tp.topic, tp.partition): c for tp, c in commits.items()})
        except KafkaException as exc:  # e.g. a rebalance, or the coordinator moving
            log.warning("offset commit failed; trying again", error=str(exc))
            return False
        self._tracker.committed_with_metadata(commits)
        return True

    def _report_lag(self) -> None:
        assert self._source is not None
        lag = dict.fromkeys(self._topics, 0)
        for tp in self._owned:
            high, end = self._source.high_watermark(tp.topic, tp.partition), self._tracker.end(tp)
            if high is not None and end is not None:
                lag[tp.topic] += max(0, high - end)
        for topic, behind in lag.items():
            CONSUMER_LAG.labels(topic).set(behind)

    async def _revoked(self, partitions: list[tuple[str, int]]) -> Offsets:
        """Let partitions go (revoked, or stopping): wait for their jobs, forget them; return
        the offsets to commit (the consumer's thread commits them before it lets go)."""
        released = {self._tp(topic, partition) for topic, partition in partitions}
        commits = await self._release(released)
        return {(tp.topic, tp.partition): commit for tp, commit in commits.items()}

    async def _release(
        self, partitions: set[TopicPartition]
    ) -> dict[TopicPartition, tuple[int, str]]:
        self._owned -= partitions
        for tp in partitions:
            if (timer := self._resume_at.pop(tp, None)) is not None:
                timer.cancel()
        jobs = [task for tp in partitions for task in self._jobs.get(tp, ())]
        if jobs:
            _, late = await asyncio.wait(jobs, timeout=self._drain_seconds)
            if late:
                log.warning("attempts unfinished at hand-over; redone later", count=len(late))
        commits = self._tracker.to_commit_with_metadata(partitions)
        self._tracker.forget(partitions)
        self._handover.forget(partitions)
        for tp in partitions:
            self._jobs.pop(tp, None)
        return commits

    async def _assigned(self, assigned: list[tuple[str, int]]) -> None:
        partitions = {self._tp(topic, partition) for topic, partition in assigned}
        # The ordered queues as their last owners left them: every write acknowledged before
        # now (they were, before those owners committed and let go) is read first.
        self._queues_loaded.clear()
        self._owned |= partitions
        try:
            await self._handover.take(partitions)
            await self._flow.load()
        except (TimeoutError, KafkaError):
            log.exception("ordered queues not loaded; ordering may be broken until reloaded")
        finally:
            self._queues_loaded.set()


def _quarantine(settings: Settings, record: Message, exc: Exception) -> list[Output]:
    QUARANTINED.labels("invalid_delivery_record").inc()
    log.warning(
        "record quarantined",
        topic=record.topic() or "",
        partition=record.partition() or 0,
        offset=record.offset() or 0,
        reason="invalid_delivery_record",
        error=str(exc)[:300],
    )
    return [
        quarantine_record(
            settings,
            value=record.value(),
            key=record.key(),
            topic=record.topic() or "",
            partition=record.partition() or 0,
            offset=record.offset() or 0,
            reason="invalid_delivery_record",
            error=f"{type(exc).__name__}: {exc}",
        )
    ]
