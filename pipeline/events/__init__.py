"""Domain events: their types, Avro schemas, wire codec, ids and the webhook body."""

from pipeline.events.codec import DecodedEvent, decode, encode
from pipeline.events.ids import new_event_id
from pipeline.events.registry import EventSchema, SchemaRegistry, default_registry
from pipeline.events.types import EVENT_TYPES, check_event_type, domain_topic_name

__all__ = [
    "EVENT_TYPES",
    "DecodedEvent",
    "EventSchema",
    "SchemaRegistry",
    "check_event_type",
    "decode",
    "default_registry",
    "domain_topic_name",
    "encode",
    "new_event_id",
]
