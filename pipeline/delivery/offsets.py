"""Which offset may be committed when records finish out of order.

Records of one partition are taken in offset order but finish in any order (a fast endpoint's
request ends before a slow one's). The offset that may be committed is the lowest one still
unfinished: everything below it is done, and after a crash the group resumes there, so an
unfinished record is read again, never skipped. (Committing past it is faust-streaming's
issue #606, which this class exists to avoid.)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

P = TypeVar("P", bound=Hashable)


@dataclass
class _Partition:
    taken: deque[int] = field(default_factory=deque)
    """Offsets taken, in order; the head is the lowest not yet known to be finished."""
    finished: set[int] = field(default_factory=set)
    """Finished offsets still behind an unfinished one."""
    end: int = 0
    """One past the highest offset taken."""
    committed: int = -1

    @property
    def position(self) -> int:
        while self.taken and self.taken[0] in self.finished:
            self.finished.discard(self.taken.popleft())
        return self.taken[0] if self.taken else self.end


class OffsetTracker(Generic[P]):
    def __init__(self) -> None:
        self._partitions: dict[P, _Partition] = {}

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

    def forget(self, partitions: Iterable[P]) -> None:
        for partition in partitions:
            self._partitions.pop(partition, None)
