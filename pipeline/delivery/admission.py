"""What the sender does with a delivery it takes: one pure function, no I/O, no clock.

The sender's loop (:mod:`pipeline.delivery.dispatcher`) first sets aside records that are not
new work (fan-out copies, fences, records a previous owner finished or delivered: see
:mod:`pipeline.delivery.copies`); for every other delivery it asks :func:`admit`, then does
what the answer says:

========================  =====================================================================
``wait``                  not due yet (a retry tier's head): pause the partition until ``wait``
``ordered``               its endpoint is ordered: the order's queue decides (:mod:`.ordering`)
``behind_breaker``        the endpoint's breaker is open: to the retry tier of its probe, no
                          attempt used
``defer``                 the endpoint has its full share of this worker: to the first tier, no
                          attempt used (a hanging endpoint cannot hold the others' turn)
``attempt``               sign and POST it (the breaker may still refuse: its half-open probe)
========================  =====================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pipeline.delivery.record import Delivery
from pipeline.endpoints.model import Endpoint

Kind = Literal["wait", "ordered", "behind_breaker", "defer", "attempt"]


@dataclass(frozen=True, slots=True)
class Admission:
    kind: Kind
    wait: float = 0.0
    """``wait``: seconds until the delivery is due."""


ATTEMPT = Admission("attempt")
ORDERED = Admission("ordered")
BEHIND_BREAKER = Admission("behind_breaker")
DEFER = Admission("defer")


def admit(
    delivery: Delivery,
    endpoint: Endpoint | None,
    *,
    now_ms: int,
    ordered: bool,
    breaker_wait: float,
    taken: int,
    share: int,
) -> Admission:
    """The decision for one delivery.

    ``ordered``: it belongs to an ordered queue (its endpoint is ordered, or it is still in a
    queue from when it was); ``breaker_wait``: seconds until the endpoint's breaker lets a
    probe through (0: closed, or a probe may go now); ``taken``: the endpoint's deliveries this
    worker holds whose request is not over; ``share``: how many it may hold (in flight + queued)."""
    if delivery.not_before > now_ms:
        return Admission("wait", (delivery.not_before - now_ms) / 1000)
    if ordered:
        return ORDERED
    if endpoint is None or not endpoint.enabled or endpoint.listen:
        return ATTEMPT  # nothing is sent: the attempt logs or dead-letters it
    if breaker_wait > 0:
        return BEHIND_BREAKER
    if taken >= share:
        return DEFER
    return ATTEMPT
