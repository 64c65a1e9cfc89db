"""The delivery log: every delivery and attempt, sunk from Kafka into day-partitioned PostgreSQL
tables by the log sink, read by the API and the dashboard with SQL (nothing held in memory).

- :mod:`~pipeline.deliverylog.sink`: the consumer group, commits after the database does
- :mod:`~pipeline.deliverylog.rows` / :mod:`~pipeline.deliverylog.writer`: records to rows,
  idempotent batched inserts
- :mod:`~pipeline.deliverylog.partitions`: days created ahead, dropped past retention
- :mod:`~pipeline.deliverylog.reads`: the API's queries
"""

from pipeline.deliverylog.model import DeliveryView, Page, Status, status_of

__all__ = ["DeliveryView", "Page", "Status", "status_of"]
