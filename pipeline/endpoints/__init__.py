"""Endpoints (subscriptions): stored in PostgreSQL (:mod:`pipeline.controlplane`), carried by
the outbox relay to a compacted Kafka topic keyed by endpoint id, which every worker reads."""

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
