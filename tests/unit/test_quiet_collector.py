"""The worker's garbage-collector tuning (``pipeline.worker.quiet_collector``): what exists when
the worker is built is frozen out of the collector's scans, and the young generation is
collected far less often than CPython's default, so records in flight die young instead of
filling the oldest generation (whose collections stopped the loop for 80-120 ms)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from pipeline.worker import GC_YOUNG_THRESHOLD, quiet_collector


@pytest.fixture
def collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("collector")
def test_freezes_what_exists_and_collects_the_young_generation_less_often() -> None:
    before = gc.get_threshold()
    built: list[object] = []  # a container: tracked by the collector
    assert any(o is built for o in gc.get_objects())

    quiet_collector()

    assert not any(o is built for o in gc.get_objects())  # frozen: never scanned again
    assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, before[1], before[2])
    assert GC_YOUNG_THRESHOLD > 700  # CPython's default, which the records in flight outlived


@pytest.mark.usefixtures("collector")
def test_what_is_created_afterwards_is_still_collected() -> None:
    quiet_collector()

    class Cycle:
        def __init__(self) -> None:
            self.me = self

    cycle = Cycle()
    assert any(o is cycle for o in gc.get_objects())
    del cycle
    assert gc.collect() >= 1  # a cycle made after the freeze is found and freed
