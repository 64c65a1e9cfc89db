"""Endpoints (subscriptions): a compacted Kafka topic keyed by endpoint id is the record."""

from pipeline.endpoints.model import Endpoint, new_endpoint, new_secret
from pipeline.endpoints.store import EndpointCache, EndpointWriter, load_endpoints

__all__ = [
    "Endpoint",
    "EndpointCache",
    "EndpointWriter",
    "load_endpoints",
    "new_endpoint",
    "new_secret",
]
