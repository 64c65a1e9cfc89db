"""What a sender takes over with a partition, so nothing its previous owner did is done twice.

At assignment it reads, for the partitions it now owns:

* the committed offsets and their metadata: the records the previous owner finished past its
  commit (:mod:`pipeline.delivery.offsets`), skipped when they come round again;
* the last ``duplicate_window`` of the deliveries topic before those offsets, and of the
  attempt log: the fan-out copies a crashed fan-out writes again, and the deliveries the
  previous owner delivered without committing (:mod:`pipeline.delivery.copies`).

What it cannot read costs duplicates, never a loss: the records are simply done again.
"""

from __future__ import annotations

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from pipeline.delivery.copies import DeliveredBefore, RecentFanouts, fanout_id, is_fence, read_back
from pipeline.delivery.offsets import OffsetTracker
from pipeline.kafka.connection import aiokafka_kwargs
from pipeline.settings import Settings
from pipeline.topics import ATTEMPTS, DELIVERIES

log = structlog.get_logger(__name__)


class Handover:
    def __init__(
        self,
        settings: Settings,
        *,
        group: str,
        tracker: OffsetTracker[TopicPartition],
        fanouts: RecentFanouts[TopicPartition],
        delivered: DeliveredBefore,
    ) -> None:
        self._settings = settings
        self._group = group
        self._tracker = tracker
        self._fanouts = fanouts
        self._delivered = delivered
        self._window_ms = int(settings.duplicate_window * 1000)
        self._deliveries_topic = settings.topic(DELIVERIES)
        self._admin: AIOKafkaAdminClient | None = None
        self._reader: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        self._admin = AIOKafkaAdminClient(**aiokafka_kwargs(self._settings))
        await self._admin.start()
        self._reader = AIOKafkaConsumer(
            **aiokafka_kwargs(self._settings), group_id=None, enable_auto_commit=False
        )
        await self._reader.start()

    async def stop(self) -> None:
        if self._admin is not None:
            await self._admin.close()
        if self._reader is not None:
            await self._reader.stop()

    async def take(self, partitions: set[TopicPartition]) -> None:
        """Read what the previous owners of ``partitions`` left (see the module's docstring)."""
        starts = await self._restore_offsets(partitions)
        await self._read_back(partitions, starts)

    def forget(self, partitions: set[TopicPartition]) -> None:
        """Partitions let go: what was read for them goes too."""
        self._fanouts.forget(partitions)
        self._delivered.forget({tp.partition for tp in partitions})

    async def _restore_offsets(self, partitions: set[TopicPartition]) -> dict[TopicPartition, int]:
        """The records the previous owners finished past their commits, so they are not done
        again; returns the committed offsets (where reading starts)."""
        assert self._admin is not None
        try:
            committed = await self._admin.list_consumer_group_offsets(
                self._group, partitions=sorted(partitions)
            )
        except KafkaError as exc:  # only costs duplicates: the records are done again
            log.warning("committed offsets not read; finished ones redone", error=repr(exc))
            return {}
        for tp, meta in committed.items():
            if tp in partitions:
                self._tracker.restore(tp, meta.offset, meta.metadata)
        if skipped := self._tracker.skipping(partitions):
            log.info("records finished by the previous owners are not done again", count=skipped)
        return {tp: meta.offset for tp, meta in committed.items() if tp in partitions}

    async def _read_back(
        self, partitions: set[TopicPartition], starts: dict[TopicPartition, int]
    ) -> None:
        """The fan-out records of the last ``duplicate_window`` before the committed offsets
        (the copies the fan-out writes after a crash are caught), and the attempt log of these
        partitions (what the previous owners delivered and did not commit is not sent again)."""
        assert self._reader is not None

        def fanout(tp: TopicPartition, record: ConsumerRecord[bytes, bytes]) -> bool:
            if is_fence(record.headers):
                self._fanouts.forget([tp])
            delivery_id = fanout_id(record.headers)
            if delivery_id is not None:
                self._fanouts.is_copy(tp, delivery_id, record.offset, record.timestamp)
            return delivery_id is not None

        def attempt(tp: TopicPartition, record: ConsumerRecord[bytes, bytes]) -> bool:
            return self._delivered.add(tp.partition, record.value or b"")

        written = {tp: o for tp, o in starts.items() if tp.topic == self._deliveries_topic}
        attempts_topic = self._settings.topic(ATTEMPTS)
        logged: dict[TopicPartition, int | None] = {
            TopicPartition(attempts_topic, n): None for n in {tp.partition for tp in partitions}
        }
        fanouts = await read_back(self._reader, dict(written), self._window_ms, fanout)
        delivered = await read_back(self._reader, logged, self._window_ms, attempt)
        log.info("recent records read back", fanout_records=fanouts, delivered=delivered)
