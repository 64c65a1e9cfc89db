"""One delivery attempt, start to finish: look up the endpoint, sign, POST, decide, and say
which records must be produced (attempt log, retry tier, dead letter, endpoint update).

The handler produces nothing itself: the agent produces its :class:`Output` records and waits
for the broker's acks before the source offset may be committed.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog

from pipeline import tracing
from pipeline.delivery.http import Poster
from pipeline.delivery.policy import AttemptResult, NextStep, next_step
from pipeline.delivery.record import Attempt, Delivery, Outcome, delivery_id_for
from pipeline.delivery.signing import webhook_headers
from pipeline.endpoints.model import Endpoint, mask
from pipeline.events.body import iso_utc, render_body
from pipeline.events.ids import new_event_id
from pipeline.kafka.producer import Output
from pipeline.observability import (
    ATTEMPT_SECONDS,
    ATTEMPTS,
    DEAD_LETTERS,
    DELIVERY_SECONDS,
    ENDPOINTS_DISABLED,
    INTERNAL_ERRORS,
    QUARANTINED,
)
from pipeline.quarantine import quarantine_record
from pipeline.settings import Settings
from pipeline.topics import ATTEMPTS as ATTEMPTS_TOPIC
from pipeline.topics import DEAD_LETTERS as DEAD_LETTERS_TOPIC
from pipeline.topics import DELIVERIES, ENDPOINTS, retry_tiers, retry_topic_name

log = structlog.get_logger(__name__)


class EndpointLookup(Protocol):
    def get(self, endpoint_id: str) -> Endpoint | None: ...


INTERNAL_RETRIES = 3
"""Times a delivery is tried again after a bug of ours (not the receiver's failure) stopped its
attempt, in the retry tiers from the first on; then it is quarantined for an operator."""


class DeliveryHandler:
    def __init__(
        self,
        settings: Settings,
        endpoints: EndpointLookup,
        sender: Poster,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self._endpoints = endpoints
        self._sender = sender
        self._clock = clock
        self._rng = rng or random.Random()

    async def aclose(self) -> None:
        """Close the sender's connections (the worker is stopping)."""
        if (close := getattr(self._sender, "aclose", None)) is not None:
            await close()

    def endpoint(self, endpoint_id: str) -> Endpoint | None:
        return self._endpoints.get(endpoint_id)

    async def handle(self, delivery: Delivery) -> list[Output]:
        outputs, _result = await self.attempt(delivery, self._endpoints.get(delivery.endpoint_id))
        return outputs

    async def attempt(
        self, delivery: Delivery, endpoint: Endpoint | None
    ) -> tuple[list[Output], AttemptResult | None]:
        """The records to produce, and the HTTP result when a request was made. ``endpoint``
        is the delivery's, as the caller looked it up (None: deleted)."""
        now_ms = int(self._clock() * 1000)
        if endpoint is None:
            return [self._log(delivery, None, "endpoint_deleted", at=now_ms)], None
        if endpoint.listen:
            return [], None  # a `velourcity listen` session forwards it: nothing to send here
        if not endpoint.enabled:
            reason = f"endpoint disabled: {endpoint.disabled_reason or 'by its owner'}"
            return [
                self._dead_letter(delivery, reason),
                self._log(delivery, None, "dead_lettered", at=now_ms, error="endpoint_disabled"),
            ], None
        body = delivery.body
        secrets = endpoint.signing_secrets(now_ms)  # newest first
        headers = webhook_headers(delivery, body, secrets, timestamp=now_ms // 1000)
        if endpoint.headers:  # the endpoint's own (none of ours: refused at registration)
            headers = dict(endpoint.headers) | headers
        if tracing.enabled():
            result = await self._traced_post(delivery, endpoint, body, headers)
        else:  # off: no span; the event's own trace context goes on to the partner
            if delivery.traceparent is not None:
                headers[tracing.HEADER] = delivery.traceparent
            result = await self._sender.post(endpoint.url, body, headers)
        if endpoint.headers and result.excerpt:  # a receiver that echoes the request
            result = _blank_header_values(result, endpoint.headers)
        step = next_step(
            result, attempt=delivery.attempt, schedule=self._settings.retry_schedule, rng=self._rng
        )
        return self._outputs(delivery, endpoint, result, step, now_ms), result

    async def _traced_post(
        self, delivery: Delivery, endpoint: Endpoint, body: bytes, headers: dict[str, str]
    ) -> AttemptResult:
        attributes = {
            "velourcity.delivery_id": delivery.delivery_id,
            "velourcity.endpoint_id": endpoint.id,
            "velourcity.event_type": delivery.event_type,
            "velourcity.attempt": delivery.attempt,
        }
        with tracing.span("POST webhook", delivery.traceparent, "CLIENT", attributes) as current:
            traceparent = tracing.traceparent_of(current, delivery.traceparent)
            if traceparent is not None:
                headers[tracing.HEADER] = traceparent
            result = await self._sender.post(endpoint.url, body, headers)
            if current is not None:
                if result.status is not None:
                    current.set_attribute("http.response.status_code", result.status)
                if result.error is not None:
                    current.set_attribute("error.type", result.error)
            return result

    def defer(
        self, delivery: Delivery, *, behind_breaker: float | None = None, at_least: float = 0.0
    ) -> list[Output]:
        """Send the delivery to a retry tier with the same attempt number (no request was made).

        The endpoint already holds its share of this worker's requests: it waits ``at_least``
        (when its share may have room again), the first tier's delay if shorter and the
        breaker's cool-down if longer, in the shortest tier that long; so it neither waits in
        memory nor holds up other endpoints' deliveries, and a hanging endpoint's deliveries do
        not come round every first tier before its breaker opens.

        Its breaker is open, its probe due in ``behind_breaker`` seconds: it waits for the
        probe, and at least as long as its attempt number would wait after a failure, in the
        shortest tier that long (the cool-down has a tier of its own). So a dead endpoint's
        backlog comes round once per cool-down, not once per first tier."""
        schedule = self._settings.retry_schedule
        if behind_breaker is None or not schedule:
            wait = min(max(self._first_tier(), at_least), self._settings.breaker_cooldown)
        else:
            wait = max(behind_breaker, schedule[min(delivery.attempt, len(schedule)) - 1])
        tiers = retry_tiers(self._settings)
        tier = next((d for d in tiers if d >= wait), tiers[-1])
        wait = min(wait, tier)
        retry = delivery.replace(not_before=int((self._clock() + wait) * 1000))
        return [Output(retry_topic_name(self._settings, tier), _key(delivery), retry.to_bytes())]

    def park(self, delivery: Delivery, *, tier: float, not_before: int) -> list[Output]:
        """Hold an ordered endpoint's delivery in a retry tier, same attempt number, while an
        earlier delivery of its order waits for a retry (see :mod:`~.ordering`)."""
        parked = delivery.replace(not_before=not_before)
        return [Output(retry_topic_name(self._settings, tier), _key(delivery), parked.to_bytes())]

    def _first_tier(self) -> float:
        return self._settings.retry_schedule[0] if self._settings.retry_schedule else 1.0

    def auto_disable(
        self, endpoint: Endpoint, failing_since_ms: int, others: Iterable[Endpoint]
    ) -> list[Output]:
        """Disable an endpoint that has failed for ``auto_disable_days`` without a success, and
        tell the account through its other endpoints that subscribe to ``endpoint.disabled``."""
        now_ms = int(self._clock() * 1000)
        since = iso_utc(datetime.fromtimestamp(failing_since_ms / 1000, UTC))
        reason = f"failing without a success since {since}"
        disabled = endpoint.replace(enabled=False, disabled_reason=reason)
        outputs = [
            Output(self._settings.topic(ENDPOINTS), endpoint.id.encode(), disabled.to_json())
        ]
        event_id = new_event_id()
        event = {
            "id": event_id,
            "type": "endpoint.disabled",
            "occurred_at": datetime.fromtimestamp(now_ms / 1000, UTC),
            "account_id": endpoint.account_id,
            "data": {
                "endpoint_id": endpoint.id,
                "url": endpoint.url,
                "reason": reason,
                "failing_since": since,
            },
        }
        body = render_body(event)
        for other in others:
            if other.id != endpoint.id and other.wants("endpoint.disabled"):
                delivery = Delivery(
                    delivery_id=delivery_id_for(event_id, other.id),
                    event_id=event_id,
                    event_type="endpoint.disabled",
                    account_id=endpoint.account_id,
                    endpoint_id=other.id,
                    body=body,
                    event_time=now_ms,
                )
                outputs.append(
                    Output(self._settings.topic(DELIVERIES), _key(delivery), delivery.to_bytes())
                )
        return outputs

    def on_error(self, delivery: Delivery, exc: BaseException) -> list[Output]:
        """A bug of ours stopped the delivery's attempt: no request was made, so it is not the
        endpoint's failure (no attempt used, nothing in its attempt log, its breaker and
        auto-disable untouched). It is counted, and tried again later with a growing wait
        (the retry tiers from the first on), :data:`INTERNAL_RETRIES` times; then it goes to
        the quarantine topic, from which ``velourcity quarantine redrive`` sends it again
        once the bug is fixed."""
        INTERNAL_ERRORS.labels("sender").inc()
        errors = delivery.internal_errors + 1
        schedule = self._settings.retry_schedule or [self._first_tier()]
        if errors > INTERNAL_RETRIES:
            QUARANTINED.labels("internal_error").inc()
            return [
                quarantine_record(
                    self._settings,
                    value=delivery.replace(internal_errors=0, not_before=0).to_bytes(),
                    key=_key(delivery),
                    topic=self._settings.topic(DELIVERIES),
                    partition=-1,
                    offset=-1,
                    reason="internal_error",
                    error=f"{type(exc).__name__}: {exc}",
                )
            ]
        tier = schedule[min(errors, len(schedule)) - 1]
        retry = delivery.replace(
            internal_errors=errors, not_before=int((self._clock() + tier) * 1000)
        )
        return [Output(retry_topic_name(self._settings, tier), _key(delivery), retry.to_bytes())]

    def _outputs(
        self, delivery: Delivery, endpoint: Endpoint, result: AttemptResult, step: NextStep, at: int
    ) -> list[Output]:
        if step.kind == "delivered":  # the common case: only its attempt log
            return [self._log(delivery, result, "delivered", at=at)]
        summary = {
            "attempt": delivery.attempt,
            "at": at,
            "status": result.status,
            "error": result.error,
        }
        tried = delivery.replace(
            history=(*delivery.history, summary), first_attempt_at=delivery.first_attempt_at or at
        )
        match step.kind:
            case "retry":
                due = at + int(step.delay * 1000)
                retry = tried.replace(attempt=delivery.attempt + 1, not_before=due)
                return [
                    Output(
                        retry_topic_name(self._settings, step.tier),
                        _key(delivery),
                        retry.to_bytes(),
                    ),
                    self._log(delivery, result, "retry", at=at, next_attempt_at=due),
                ]
            case "dead_letter":
                return [
                    self._dead_letter(tried, step.reason),
                    self._log(delivery, result, "dead_lettered", at=at),
                ]
            case _:  # disable: 410 Gone
                disabled = endpoint.replace(enabled=False, disabled_reason=step.reason)
                return [
                    Output(
                        self._settings.topic(ENDPOINTS), endpoint.id.encode(), disabled.to_json()
                    ),
                    self._dead_letter(tried, step.reason),
                    self._log(delivery, result, "endpoint_disabled", at=at),
                ]

    def _dead_letter(self, delivery: Delivery, reason: str) -> Output:
        record = delivery.replace(dead_letter_reason=reason)
        return Output(self._settings.topic(DEAD_LETTERS_TOPIC), _key(delivery), record.to_bytes())

    def _log(
        self,
        delivery: Delivery,
        result: AttemptResult | None,
        outcome: Outcome,
        *,
        at: int,
        error: str | None = None,
        next_attempt_at: int | None = None,
    ) -> Output:
        attempt = Attempt(
            delivery_id=delivery.delivery_id,
            endpoint_id=delivery.endpoint_id,
            account_id=delivery.account_id,
            event_id=delivery.event_id,
            event_type=delivery.event_type,
            attempt=delivery.attempt,
            at=at,
            status=result.status if result else None,
            error=result.error if result else (error or outcome),
            latency_ms=round(result.latency_ms, 2) if result else 0.0,
            response_excerpt=result.excerpt if result else "",
            outcome=outcome,
            next_attempt_at=next_attempt_at,
            event_time=delivery.event_time,
        )
        _observe(attempt, delivery)
        return Output(self._settings.topic(ATTEMPTS_TOPIC), _key(delivery), attempt.to_bytes())


_COUNTERS: dict[tuple[str, str], Any] = {}


def _observe(attempt: Attempt, delivery: Delivery) -> None:
    """Metrics for every attempt (label children bound once per outcome and type); a console
    line for every one that did not deliver (ids, status, timing: never a secret or a URL).
    A delivered attempt's line is at DEBUG: the attempts topic is the log of every webhook."""
    key = (attempt.outcome, attempt.event_type)
    counter = _COUNTERS.get(key)
    if counter is None:
        counter = _COUNTERS[key] = ATTEMPTS.labels(*key)
    counter.inc()
    if attempt.status is not None or attempt.latency_ms:
        ATTEMPT_SECONDS.observe(attempt.latency_ms / 1000)
    if attempt.outcome == "delivered":
        DELIVERY_SECONDS.observe(max(0.0, (attempt.at - delivery.event_time) / 1000))
        emit = log.debug
    else:
        emit = log.info
        if attempt.outcome in ("dead_lettered", "endpoint_disabled"):
            DEAD_LETTERS.inc()
            if attempt.outcome == "endpoint_disabled":
                ENDPOINTS_DISABLED.inc()
    emit(
        "attempt",
        delivery_id=attempt.delivery_id,
        event_id=attempt.event_id,
        event_type=attempt.event_type,
        endpoint_id=attempt.endpoint_id,
        account_id=attempt.account_id,
        attempt=attempt.attempt,
        status=attempt.status,
        error=attempt.error,
        latency_ms=attempt.latency_ms,
        outcome=attempt.outcome,
        next_attempt_at=attempt.next_attempt_at,
    )


def _blank_header_values(
    result: AttemptResult, headers: tuple[tuple[str, str], ...]
) -> AttemptResult:
    """The response excerpt (kept in the attempt log) without the custom headers' values."""
    excerpt = result.excerpt
    for _name, value in headers:
        if len(value) >= 4:
            excerpt = excerpt.replace(value, mask(value))
    return dataclasses.replace(result, excerpt=excerpt) if excerpt != result.excerpt else result


def _key(delivery: Delivery) -> bytes:
    return delivery.endpoint_id.encode()
