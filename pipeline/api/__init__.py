"""The REST API (``velourcity api``): accounts, API keys and endpoints over HTTP, on Kafka."""

from pipeline.api.app import create_api
from pipeline.api.backends import Backends, kafka_backends

__all__ = ["Backends", "create_api", "kafka_backends"]
