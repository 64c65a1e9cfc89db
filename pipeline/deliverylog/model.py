"""What the delivery log answers: a delivery with its attempts (or their summary), and pages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pipeline.delivery.record import Attempt, Delivery

Status = Literal["pending", "retrying", "delivered", "failed"]
FAILED_OUTCOMES = ("dead_lettered", "endpoint_disabled", "endpoint_deleted")
"""Outcomes after which nothing more is tried: the delivery has failed."""


def status_of(last_outcome: str | None) -> Status:
    """A delivery's status from its latest attempt's outcome (None: no attempt yet)."""
    if last_outcome is None:
        return "pending"
    if last_outcome == "delivered":
        return "delivered"
    return "failed" if last_outcome in FAILED_OUTCOMES else "retrying"


def status_sql(outcome: str) -> str:
    """:func:`status_of` as a SQL expression of the column or alias ``outcome`` (the sink keeps
    ``deliveries.status`` with it)."""
    failed = ", ".join(f"'{o}'" for o in FAILED_OUTCOMES)
    return (
        f"CASE WHEN {outcome} IS NULL THEN 'pending' WHEN {outcome} = 'delivered' THEN 'delivered'"
        f" WHEN {outcome} IN ({failed}) THEN 'failed' ELSE 'retrying' END"
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryView:
    delivery_id: str
    event_id: str
    event_type: str
    account_id: str
    endpoint_id: str
    created_at: int
    """When the delivery was first seen (unix ms): fan-out, redrive or a manual retry."""
    body: str | None
    """The exact body sent (None where a list left it out)."""
    event_time: int
    attempt_count: int
    last_attempt: Attempt | None
    attempts: tuple[Attempt, ...] = ()
    """Every attempt, oldest first: filled for one delivery (``get``), empty in lists."""

    @property
    def status(self) -> Status:
        return status_of(self.last_attempt.outcome if self.last_attempt else None)

    @property
    def next_attempt_at(self) -> int | None:
        last = self.last_attempt
        return last.next_attempt_at if last is not None and self.status == "retrying" else None

    @property
    def updated_at(self) -> int:
        return self.last_attempt.at if self.last_attempt else self.created_at

    def fresh_delivery(self) -> Delivery:
        """The delivery again, at attempt 1 of a fresh schedule, same delivery id and
        ``webhook-id``."""
        if self.body is None:
            raise ValueError(f"{self.delivery_id} was read without its body")
        return Delivery(
            delivery_id=self.delivery_id,
            event_id=self.event_id,
            event_type=self.event_type,
            account_id=self.account_id,
            endpoint_id=self.endpoint_id,
            body=self.body.encode(),
            event_time=self.event_time,
        )


@dataclass(frozen=True, slots=True)
class Page:
    items: list[DeliveryView]
    next_cursor: str | None
