"""PostgreSQL: the store for what people query and change (the delivery log, the control plane).

Kafka still moves everything; nothing on the hot path (fan-out, sender) imports this package.
"""

from pipeline.db.connection import async_pool, connect, unavailable_as_error
from pipeline.db.schema import Migration, available, migrate

__all__ = ["Migration", "async_pool", "available", "connect", "migrate", "unavailable_as_error"]
