"""Schema evolution: each version reads data written by the others (avro.compatibility)."""

import itertools
import json

import pytest
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType
from avro.schema import parse

from pipeline.events import EVENT_TYPES, default_registry

REGISTRY = default_registry()


def _versions(event_type: str):
    return [s for s in REGISTRY.all() if s.event_type == event_type]


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_every_version_pair_is_compatible_both_ways(event_type: str) -> None:
    checker = ReaderWriterCompatibilityChecker()
    for reader, writer in itertools.permutations(_versions(event_type), 2):
        result = checker.get_compatibility(
            parse(json.dumps(reader.definition)), parse(json.dumps(writer.definition))
        )
        assert result.compatibility is SchemaCompatibilityType.compatible, (
            f"v{reader.version} cannot read v{writer.version}: {result.messages}"
        )


def test_a_second_version_ships() -> None:
    assert [s.version for s in _versions("order.created")] == [1, 2]
    assert REGISTRY.current("order.created").version == 2


def test_the_checker_does_catch_a_breaking_change() -> None:
    """Guard against a checker that always says yes: a new required field breaks old data."""
    v1 = REGISTRY.current("payment.completed").definition
    broken = json.loads(json.dumps(v1))
    broken["fields"][4]["type"]["fields"].append({"name": "fee", "type": "long"})
    result = ReaderWriterCompatibilityChecker().get_compatibility(
        parse(json.dumps(broken)), parse(json.dumps(v1))
    )
    assert result.compatibility is SchemaCompatibilityType.incompatible
