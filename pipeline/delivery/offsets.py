"""Which offset may be committed when records finish out of order.

Records of one partition are taken in offset order but finish in any order (a fast endpoint's
request ends before a slow one's). The offset that may be committed is the lowest one still
unfinished: everything below it is done, and after a crash the group resumes there, so an
unfinished record is read again, never skipped. (Committing past it is faust-streaming's
issue #606, which this class exists to avoid.)

The records finished *beyond* that offset travel with the commit, as its metadata (a bitmap:
:func:`encode_finished`). Whoever owns the partition next (after a crash or a rebalance)
reads them back (:meth:`OffsetTracker.restore`) and does not do them again: without this, a
worker killed with a slow record at the head of a partition had every finished record after
it redone, i.e. delivered twice (the approach of Confluent's parallel-consumer).
"""

from __future__ import annotations

import base64
from collections import deque
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

P = TypeVar("P", bound=Hashable)

METADATA_PREFIX = "finished:v1:"
METADATA_MAX_CHARS = 3000
"""Kafka keeps at most ``offset.metadata.max.bytes`` (4096 by default) of metadata per
partition; a longer bitmap is cut (the records past the cut are merely done again)."""


def encode_finished(position: int, finished: list[int]) -> str:
    """The offsets finished past ``position`` as commit metadata (bit i: ``position + 1 + i``)."""
    if not finished:
        return ""
    bits = bytearray((max(finished) - position + 7) // 8)
    for offset in finished:
        i = offset - position - 1
        bits[i // 8] |= 1 << (i % 8)
    text = base64.b64encode(bytes(bits[: METADATA_MAX_CHARS * 3 // 4])).decode()
    return METADATA_PREFIX + text


def decode_finished(position: int, metadata: str | None) -> set[int]:
    """The offsets :func:`encode_finished` wrote; nothing for metadata it did not write."""
    if not metadata or not metadata.startswith(METADATA_PREFIX):
        return set()
    try:
        bits = base64.b64decode(metadata.removeprefix(METADATA_PREFIX), validate=True)
    except ValueError:
        return set()
    first = position + 1
    return {first + i * 8 + b for i, byte in enumerate(bits) for b in range(8) if byte >> b & 1}


@dataclass
class _Partition:
    taken: deque[int] = field(default_factory=deque)
    """Offsets taken, in order; the head is the lowest not yet known to be finished."""
    finished: set[int] = field(default_factory=set)
    """Finished offsets still behind an unfinished one."""
    end: int = 0
    """One past the highest offset taken."""
    committed: int = -1
    committed_metadata: str = ""
    done_before: set[int] = field(default_factory=set)
    """Offsets a previous owner finished past its committed offset: not to be done again."""

    @property
    def position(self) -> int:
        while self.taken and self.taken[0] in self.finished:
            self.finished.discard(self.taken.popleft())
        return self.taken[0] if self.taken else self.end


class OffsetTracker(Generic[P]):
    def __init__(self) -> None:
        self._partitions: dict[P, _Partition] = {}

    def restore(self, partition: P, offset: int, metadata: str | None) -> None:
        """A newly owned partition's committed ``offset`` and ``metadata``: the records its
        previous owner finished past the offset are not to be done again (:meth:`skip`)."""
        if offset < 0:  # nothing committed yet
            return
        self._partitions[partition] = _Partition(
            end=offset,
            committed=offset,
            committed_metadata=metadata or "",
            done_before=decode_finished(offset, metadata),
        )

    def skipping(self, partitions: Iterable[P]) -> int:
        """How many offsets :meth:`restore` said are finished already."""
        return sum(len(s.done_before) for p in partitions if (s := self._partitions.get(p)))

    def skip(self, partition: P, offset: int) -> bool:
        """True when a previous owner finished ``offset`` already: it is now taken and
        finished at once. False: do it."""
        state = self._partitions.get(partition)
        if state is None or offset not in state.done_before:
            return False
        state.done_before.discard(offset)
        self.start(partition, offset)
        state.finished.add(offset)
        return True

    def start(self, partition: P, offset: int) -> None:
        """Record that ``offset`` was taken; offsets of a partition must come in order."""
        state = self._partitions.setdefault(partition, _Partition())
        if state.taken and offset <= state.taken[-1]:
            raise ValueError(f"{partition}: offset {offset} taken after {state.taken[-1]}")
        state.taken.append(offset)
        state.end = offset + 1

    def finish(self, partition: P, offset: int) -> None:
        """Record that ``offset`` is done; unknown partitions (revoked since) are ignored."""
        state = self._partitions.get(partition)
        if state is not None:
            state.finished.add(offset)

    def end(self, partition: P) -> int | None:
        """One past the highest offset taken; None before the first."""
        state = self._partitions.get(partition)
        return state.end if state else None

    def unfinished(self, partition: P) -> int:
        state = self._partitions.get(partition)
        return len(state.taken) - len(state.finished) if state else 0

    def to_commit(self, partitions: Iterable[P] | None = None) -> dict[P, int]:
        """The offsets to commit (next offset to read, Kafka's convention) that moved since
        :meth:`committed` was last told about them."""
        wanted = self._partitions.keys() if partitions is None else partitions
        offsets = {}
        for partition in wanted:
            state = self._partitions.get(partition)
            if state is not None and state.position > state.committed:
                offsets[partition] = state.position
        return offsets

    def committed(self, offsets: dict[P, int]) -> None:
        for partition, offset in offsets.items():
            if (state := self._partitions.get(partition)) is not None:
                state.committed = max(state.committed, offset)

    def to_commit_with_metadata(
        self, partitions: Iterable[P] | None = None
    ) -> dict[P, tuple[int, str]]:
        """Like :meth:`to_commit`, each offset with the records finished past it (metadata);
        a partition is listed when either changed since :meth:`committed_with_metadata`."""
        wanted = self._partitions.keys() if partitions is None else partitions
        commits = {}
        for partition in wanted:
            state = self._partitions.get(partition)
            if state is None:
                continue
            position = state.position
            finished = sorted(o for o in state.finished if o > position) + sorted(
                o for o in state.done_before if o > position
            )
            metadata = encode_finished(position, finished)
            if position > state.committed or (
                position == state.committed and metadata != state.committed_metadata
            ):
                commits[partition] = (position, metadata)
        return commits

    def committed_with_metadata(self, commits: dict[P, tuple[int, str]]) -> None:
        for partition, (offset, metadata) in commits.items():
            if (state := self._partitions.get(partition)) is not None and offset >= state.committed:
                state.committed, state.committed_metadata = offset, metadata

    def forget(self, partitions: Iterable[P]) -> None:
        for partition in partitions:
            self._partitions.pop(partition, None)
