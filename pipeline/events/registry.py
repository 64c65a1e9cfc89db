"""The Avro schemas shipped in ``schemas/``, indexed by fingerprint and by event type.

The top-level ``schemas/`` folder of the repository is the one source: a checkout or an
editable install reads it there, and building the wheel copies it into the package as
``pipeline/events/schemas/`` (``setup.py``), where an installed wheel reads it.

Files are named ``<event type>.v<N>.avsc`` and each is self-contained, so any Avro reader can
use them alone. The highest version of a type is the one written and read into; older
versions stay so that records written with them can still be read.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

from pipeline.events.types import EVENT_TYPES
from pipeline.exceptions import ConfigurationError


def _shipped_schemas_dir() -> Path:
    packaged = Path(__file__).resolve().parent / "schemas"  # an installed wheel
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "schemas"  # a checkout or editable install


DEFAULT_SCHEMAS_DIR = _shipped_schemas_dir()
_FILE_NAME = re.compile(r"^(?P<type>[a-z_]+\.[a-z_]+)\.v(?P<version>\d+)\.avsc$")


@dataclass(frozen=True, slots=True, kw_only=True)
class EventSchema:
    event_type: str
    version: int
    path: Path
    definition: dict[str, Any]
    """The schema as written in its file (JSON)."""
    parsed: Any
    """The schema as parsed by fastavro."""
    fingerprint: bytes
    """CRC-64-AVRO of the parsing canonical form, as the 8 little-endian bytes on the wire."""


class SchemaRegistry:
    """Writer schemas by fingerprint, and the reader (current) schema of each event type.

    ``pin`` fixes the reader version of some types, as a service built before a newer
    version existed would read: ``SchemaRegistry(schemas, pin={"order.created": 1})``.
    """

    def __init__(self, schemas: list[EventSchema], *, pin: dict[str, int] | None = None) -> None:
        self._by_fingerprint = {s.fingerprint: s for s in schemas}
        self._current: dict[str, EventSchema] = {}
        for schema in sorted(schemas, key=lambda s: s.version):
            if schema.version <= (pin or {}).get(schema.event_type, schema.version):
                self._current[schema.event_type] = schema
        missing = set(EVENT_TYPES) - set(self._current)
        if missing:
            raise ConfigurationError(f"no schema for event types: {', '.join(sorted(missing))}")

    @classmethod
    def from_directory(cls, directory: Path = DEFAULT_SCHEMAS_DIR) -> SchemaRegistry:
        schemas = [load_schema_file(path) for path in sorted(directory.glob("*.avsc"))]
        if not schemas:
            raise ConfigurationError(
                f"no Avro schemas (*.avsc) in {directory}: the package was built without its "
                "schemas (build the wheel with the project's setup.py, from the repository)"
            )
        return cls(schemas)

    def current(self, event_type: str) -> EventSchema:
        return self._current[event_type]

    def by_fingerprint(self, value: bytes) -> EventSchema | None:
        return self._by_fingerprint.get(value)

    def all(self) -> list[EventSchema]:
        return sorted(self._by_fingerprint.values(), key=lambda s: (s.event_type, s.version))


def load_schema_file(path: Path) -> EventSchema:
    match = _FILE_NAME.match(path.name)
    if match is None:
        raise ConfigurationError(f"schema file {path.name!r} is not named <event type>.v<N>.avsc")
    definition = json.loads(path.read_text())
    parsed = fastavro.parse_schema(definition)
    canonical = to_parsing_canonical_form(definition)
    return EventSchema(
        event_type=match["type"],
        version=int(match["version"]),
        path=path,
        definition=definition,
        parsed=parsed,
        fingerprint=bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO")),
    )


@cache
def default_registry() -> SchemaRegistry:
    """The registry of the schemas shipped with the project (loaded once per process)."""
    return SchemaRegistry.from_directory()
