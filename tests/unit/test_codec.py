import contextlib
import io
import json
import random
from datetime import UTC, datetime

import avro.io
import avro.schema
import orjson
import pytest
from fastavro.schema import to_parsing_canonical_form

from pipeline.events import EVENT_TYPES, decode, default_registry, encode
from pipeline.events.body import render_body
from pipeline.events.codec import HEADER_SIZE, MAGIC
from pipeline.events.ids import new_event_id, ulid
from pipeline.events.samples import sample_event
from pipeline.exceptions import (
    CorruptPayload,
    DecodeError,
    InvalidEvent,
    MissingHeader,
    UnknownFingerprint,
)

REGISTRY = default_registry()


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_round_trip_every_event_type(event_type: str) -> None:
    event = sample_event(event_type, "acct_1", rng=random.Random(7))
    decoded = decode(encode(event, REGISTRY.current(event_type)), REGISTRY)
    assert decoded.event_type == event_type
    assert decoded.event["id"] == event["id"]
    assert decoded.event["data"]["order_id"] == event["data"]["order_id"]


@pytest.mark.parametrize("schema", REGISTRY.all(), ids=lambda s: f"{s.event_type}.v{s.version}")
def test_fingerprint_matches_the_avro_reference_implementation(schema) -> None:
    """The Rabin CRC-64 of the apache ``avro`` package agrees with ours on the canonical form.

    (``avro``'s own canonical form keeps ``{"type":"long"}`` for logical types, unlike the
    spec's [PRIMITIVES] rule and the Java implementation; fastavro follows the spec.)
    """
    canonical = to_parsing_canonical_form(json.loads(schema.path.read_text()))
    assert avro.schema._crc_64_fingerprint(canonical.encode()) == schema.fingerprint
    assert '"logicalType"' not in canonical and '{"type":"long"}' not in canonical


def test_wire_format_is_single_object_encoding() -> None:
    event = sample_event("order.picked_up", "acct_1")
    schema = REGISTRY.current("order.picked_up")
    payload = encode(event, schema)
    assert payload[:2] == b"\xc3\x01" == MAGIC
    assert payload[2:HEADER_SIZE] == schema.fingerprint
    # The body alone is plain Avro binary any reader can decode with the schema file.
    parsed = avro.schema.parse(schema.path.read_text())
    body = avro.io.DatumReader(parsed).read(
        avro.io.BinaryDecoder(io.BytesIO(payload[HEADER_SIZE:]))
    )
    assert body["id"] == event["id"]


def test_invalid_event_names_the_field() -> None:
    event = sample_event("payment.completed", "acct_1")
    event["data"]["amount"] = "twelve euros"
    with pytest.raises(InvalidEvent, match="amount"):
        encode(event, REGISTRY.current("payment.completed"))


def test_event_type_must_match_schema() -> None:
    event = sample_event("order.delivered", "acct_1")
    with pytest.raises(InvalidEvent, match="does not match"):
        encode(event, REGISTRY.current("order.picked_up"))


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b"", MissingHeader),
        (None, MissingHeader),
        (b"hello world, not avro", MissingHeader),
        (b"\xc3\x01\x00", MissingHeader),
        (b"\xc3\x01" + b"\x00" * 8 + b"\x02", UnknownFingerprint),
    ],
)
def test_garbage_decodes_to_a_typed_error(payload: bytes | None, error: type[DecodeError]) -> None:
    with pytest.raises(error) as info:
        decode(payload, REGISTRY)
    assert info.value.reason == error.reason


def test_truncated_and_trailing_bytes_are_corrupt() -> None:
    payload = encode(sample_event("order.created", "acct_1"), REGISTRY.current("order.created"))
    with pytest.raises(CorruptPayload, match="truncated or corrupt"):
        decode(payload[:-20], REGISTRY)
    with pytest.raises(CorruptPayload, match="trailing"):
        decode(payload + b"\x00\x00", REGISTRY)


def test_random_bytes_never_escape_as_anything_but_decode_error() -> None:
    rng = random.Random(1234)
    good = encode(sample_event("order.created", "acct_1"), REGISTRY.current("order.created"))
    for _ in range(2000):
        if rng.random() < 0.5:
            payload = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 64)))
        else:  # a valid header with a mangled body: the hard case
            body = bytearray(good[HEADER_SIZE:])
            for _ in range(rng.randint(1, 8)):
                body[rng.randrange(len(body))] = rng.getrandbits(8)
            payload = good[:HEADER_SIZE] + bytes(body[: rng.randint(0, len(body))])
        with contextlib.suppress(DecodeError):
            decode(payload, REGISTRY)


def test_body_is_the_seed_format_with_canonical_bytes() -> None:
    event = sample_event("order.created", "acct_9", rng=random.Random(3))
    event["occurred_at"] = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    decoded = decode(encode(event, REGISTRY.current("order.created")), REGISTRY).event
    body = render_body(decoded)
    parsed = orjson.loads(body)
    assert list(parsed) == ["id", "type", "created_at", "account_id", "data"]
    assert parsed["created_at"] == "2026-01-02T03:04:05.678Z"
    assert parsed["account_id"] == "acct_9"
    assert orjson.dumps(parsed) == body  # compact JSON, keys in schema order
    assert render_body(decoded) == body  # deterministic


def test_event_ids_are_time_ordered() -> None:
    ids = [ulid(now_ms=ms) for ms in (1, 2, 1_000, 10**12, 2**47)]
    assert ids == sorted(ids)
    assert len(ids[0]) == 26
    assert new_event_id().startswith("evt_")
