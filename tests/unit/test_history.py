"""The delivery history view: status from attempts, account isolation, filters, cursors."""

from __future__ import annotations

import pytest

from pipeline.delivery.record import Attempt, Delivery, Outcome
from pipeline.history import DeliveryHistory


def delivery(
    n: int, account: str = "acct_a", endpoint: str = "ep_1", kind: str = "order.created"
) -> Delivery:
    return Delivery(
        delivery_id=f"dlv_{n}",
        event_id=f"evt_{n}",
        event_type="order.created",
        account_id=account,
        endpoint_id=endpoint,
        body=f'{{"n":{n}}}',
        event_time=1_000 * n,
    )


def attempt(d: Delivery, number: int, outcome: Outcome, at: int, status: int = 500) -> Attempt:
    return Attempt(
        delivery_id=d.delivery_id,
        endpoint_id=d.endpoint_id,
        account_id=d.account_id,
        event_id=d.event_id,
        event_type=d.event_type,
        attempt=number,
        at=at,
        status=200 if outcome == "delivered" else status,
        error=None,
        latency_ms=3.0,
        response_excerpt="ok",
        outcome=outcome,
        next_attempt_at=at + 5_000 if outcome == "retry" else None,
    )


@pytest.fixture
def history() -> DeliveryHistory:
    return DeliveryHistory(retention_seconds=3600)


def test_status_follows_the_attempts(history: DeliveryHistory) -> None:
    d = delivery(1)
    history.add_delivery(d, seen_at=1_000)
    assert history.get("acct_a", "dlv_1").status == "pending"
    history.add_attempt(attempt(d, 1, "retry", at=2_000))
    view = history.get("acct_a", "dlv_1")
    assert (view.status, view.next_attempt_at) == ("retrying", 7_000)
    history.add_attempt(attempt(d, 2, "delivered", at=8_000))
    history.add_attempt(attempt(d, 2, "delivered", at=8_000))  # the same record read twice
    view = history.get("acct_a", "dlv_1")
    assert view.status == "delivered"
    assert [a.attempt for a in view.attempts] == [1, 2]
    assert view.next_attempt_at is None


def test_dead_letters_and_disabled_endpoints_are_failed(history: DeliveryHistory) -> None:
    for n, outcome in enumerate(("dead_lettered", "endpoint_disabled", "endpoint_deleted")):
        d = delivery(n)
        history.add_delivery(d, seen_at=1)
        history.add_attempt(attempt(d, 1, outcome, at=2))  # type: ignore[arg-type]
        assert history.get("acct_a", d.delivery_id).status == "failed"


def test_another_accounts_delivery_is_not_found(history: DeliveryHistory) -> None:
    history.add_delivery(delivery(1, account="acct_b"), seen_at=1)
    assert history.get("acct_a", "dlv_1") is None
    assert history.page("acct_a").items == []
    assert [v.delivery_id for v in history.page("acct_b").items] == ["dlv_1"]


def test_filters_and_newest_first_cursor_pages(history: DeliveryHistory) -> None:
    for n in range(10):
        history.add_delivery(delivery(n, endpoint=f"ep_{n % 2}"), seen_at=1_000 * n)
    first = history.page("acct_a", endpoint_id="ep_0", limit=2)
    assert [v.delivery_id for v in first.items] == ["dlv_8", "dlv_6"]
    second = history.page("acct_a", endpoint_id="ep_0", limit=2, cursor=first.next_cursor)
    assert [v.delivery_id for v in second.items] == ["dlv_4", "dlv_2"]
    third = history.page("acct_a", endpoint_id="ep_0", limit=2, cursor=second.next_cursor)
    assert [v.delivery_id for v in third.items] == ["dlv_0"]
    assert third.next_cursor is None
    window = history.page("acct_a", since=3_000, until=5_000)
    assert [v.delivery_id for v in window.items] == ["dlv_4", "dlv_3"]
    assert history.page("acct_a", event_type="payment.completed").items == []
    with pytest.raises(ValueError, match="cursor"):
        history.page("acct_a", cursor="bogus")


def test_recover_finds_failed_deliveries_since_a_time(history: DeliveryHistory) -> None:
    for n in range(4):
        d = delivery(n)
        history.add_delivery(d, seen_at=1_000 * n)
        history.add_attempt(attempt(d, 1, "dead_lettered" if n % 2 else "delivered", at=1_000 * n))
    failed = history.matching("acct_a", endpoint_id="ep_1", status="failed", since=0)
    assert [v.delivery_id for v in failed] == ["dlv_1", "dlv_3"]
    fresh = failed[0].fresh_delivery()
    assert fresh is not None
    assert (fresh.delivery_id, fresh.attempt, fresh.body) == ("dlv_1", 1, b'{"n":1}')


def test_a_delivery_known_only_from_its_attempts_cannot_be_sent_again(
    history: DeliveryHistory,
) -> None:
    history.add_attempt(attempt(delivery(1), 1, "dead_lettered", at=5))
    view = history.get("acct_a", "dlv_1")
    assert view.body is None
    assert view.fresh_delivery() is None


def test_per_minute_counts_by_outcome(history: DeliveryHistory) -> None:
    d = delivery(1)
    history.add_attempt(attempt(d, 1, "retry", at=60_000))
    history.add_attempt(attempt(d, 2, "retry", at=65_000))
    history.add_attempt(attempt(d, 3, "delivered", at=130_000))
    assert history.per_minute("acct_a", endpoint_id=None, since=0) == {
        60_000: {"retry": 2},
        120_000: {"delivered": 1},
    }


def test_prune_forgets_what_is_past_retention(history: DeliveryHistory) -> None:
    history.add_delivery(delivery(1), seen_at=0)
    history.add_delivery(delivery(2), seen_at=3_000_000)
    assert history.prune(now_ms=3_700_000) == 1
    assert [v.delivery_id for v in history.page("acct_a").items] == ["dlv_2"]
