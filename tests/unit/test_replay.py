"""Replay's pure parts: the window, whose events go where, the replay header, argument checks."""

from __future__ import annotations

import random
import sys
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from pipeline.cli import app, main
from pipeline.delivery.record import Delivery
from pipeline.delivery.signing import webhook_headers
from pipeline.endpoints.model import Endpoint, new_secret
from pipeline.events import decode, default_registry, encode
from pipeline.events.samples import sample_event
from pipeline.exceptions import DecodeError, InvalidInput
from pipeline.fanout import fan_out
from pipeline.replay import check_arguments, check_window, replay_deliveries, resolve_target

REGISTRY = default_registry()


def endpoint(endpoint_id: str, account_id: str = "acct_a", **changes: Any) -> Endpoint:
    values: dict[str, Any] = {
        "id": endpoint_id,
        "account_id": account_id,
        "url": f"https://hooks.example.com/{endpoint_id}",
        "event_types": None,
        "secret": new_secret(),
        "created_at": 1_760_000_000_000,
        "updated_at": 1_760_000_000_000,
    } | changes
    return Endpoint(**values)


ENDPOINTS = {
    e.id: e
    for e in (
        endpoint("ep_a_all"),
        endpoint("ep_a_paid", event_types=("payment.completed",)),
        endpoint("ep_a_off", enabled=False),
        endpoint("ep_b", account_id="acct_b"),
    )
}


def encoded(event_type: str = "order.created", account_id: str = "acct_a") -> bytes:
    event = sample_event(event_type, account_id, rng=random.Random(7))
    return encode(event, REGISTRY.current(event_type))


# The window ---------------------------------------------------------------------------------


def test_window_must_not_be_empty_or_inverted() -> None:
    check_window(1_000, None)
    check_window(1_000, 2_000)
    for until in (1_000, 999):
        with pytest.raises(InvalidInput, match="--until must be later than --since"):
            check_window(1_000, until)


# Arguments ----------------------------------------------------------------------------------


def test_targeted_replay_needs_an_account_or_an_endpoint() -> None:
    check_arguments(reset=False, account_id="acct_a", endpoint_id=None, until_given=True)
    check_arguments(reset=False, account_id=None, endpoint_id="ep_a_all", until_given=False)
    with pytest.raises(InvalidInput, match="--account ID or --endpoint ID"):
        check_arguments(reset=False, account_id=None, endpoint_id=None, until_given=False)


@pytest.mark.parametrize(
    "extra",
    [{"account_id": "acct_a"}, {"endpoint_id": "ep_a_all"}, {"until_given": True}],
)
def test_reset_offsets_is_for_everything_so_it_takes_no_target(extra: dict[str, Any]) -> None:
    check_arguments(reset=True, account_id=None, endpoint_id=None, until_given=False)
    arguments: dict[str, Any] = {"account_id": None, "endpoint_id": None, "until_given": False}
    with pytest.raises(InvalidInput, match="cannot be combined"):
        check_arguments(reset=True, **(arguments | extra))


def test_an_account_replays_to_its_enabled_endpoints() -> None:
    target = resolve_target(ENDPOINTS, account_id="acct_a", endpoint_id=None)
    assert target.account_id == "acct_a"
    assert [e.id for e in target.endpoints] == ["ep_a_all", "ep_a_paid"]


def test_an_account_without_enabled_endpoints_is_refused() -> None:
    with pytest.raises(InvalidInput, match="acct_typo"):
        resolve_target(ENDPOINTS, account_id="acct_typo", endpoint_id=None)


def test_an_endpoint_implies_its_account() -> None:
    target = resolve_target(ENDPOINTS, account_id=None, endpoint_id="ep_b")
    assert (target.account_id, [e.id for e in target.endpoints]) == ("acct_b", ["ep_b"])
    same = resolve_target(ENDPOINTS, account_id="acct_b", endpoint_id="ep_b")
    assert same == target


@pytest.mark.parametrize(
    ("account_id", "endpoint_id", "message"),
    [
        ("acct_a", "ep_nope", "unknown endpoint 'ep_nope'"),
        ("acct_a", "ep_b", "ep_b belongs to account acct_b, not acct_a"),
        (None, "ep_a_off", "ep_a_off is disabled"),
    ],
)
def test_bad_endpoint_choices_are_refused(
    account_id: str | None, endpoint_id: str, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        resolve_target(ENDPOINTS, account_id=account_id, endpoint_id=endpoint_id)


# Whose events go where ----------------------------------------------------------------------


def test_replayed_deliveries_are_the_first_ones_marked_replay() -> None:
    target = resolve_target(ENDPOINTS, account_id="acct_a", endpoint_id=None)
    raw = encoded("payment.completed")
    first = fan_out(decode(raw, REGISTRY), ENDPOINTS.values())
    again = replay_deliveries(raw, target, REGISTRY)
    assert [d.endpoint_id for d in again] == ["ep_a_all", "ep_a_paid"]
    assert all(d.replay for d in again)
    assert [d.replace(replay=False) for d in again] == first  # same delivery ids, same bytes


def test_event_types_and_the_chosen_endpoint_still_filter() -> None:
    account = resolve_target(ENDPOINTS, account_id="acct_a", endpoint_id=None)
    assert [d.endpoint_id for d in replay_deliveries(encoded(), account, REGISTRY)] == ["ep_a_all"]
    only = resolve_target(ENDPOINTS, account_id=None, endpoint_id="ep_a_paid")
    assert replay_deliveries(encoded(), only, REGISTRY) == []


def test_other_accounts_events_are_never_replayed() -> None:
    target = resolve_target(ENDPOINTS, account_id="acct_a", endpoint_id=None)
    assert replay_deliveries(encoded(account_id="acct_b"), target, REGISTRY) == []


def test_undecodable_records_raise_what_the_replay_counts_as_skipped() -> None:
    target = resolve_target(ENDPOINTS, account_id="acct_a", endpoint_id=None)
    for raw in (None, b"", b"not avro", encoded()[:-3]):
        with pytest.raises(DecodeError):
            replay_deliveries(raw, target, REGISTRY)


# The replay flag on the wire ----------------------------------------------------------------


def test_a_replay_carries_its_header_and_an_ordinary_delivery_does_not() -> None:
    target = resolve_target(ENDPOINTS, account_id="acct_a", endpoint_id=None)
    (delivery, _) = replay_deliveries(encoded("payment.completed"), target, REGISTRY)
    body = delivery.body
    replayed = webhook_headers(delivery, body, [new_secret()], timestamp=1)
    assert replayed["X-Velourcity-Replay"] == "true"
    assert replayed["webhook-id"] == delivery.event_id
    ordinary = webhook_headers(delivery.replace(replay=False), body, [new_secret()], timestamp=1)
    assert "X-Velourcity-Replay" not in ordinary


def test_the_flag_survives_the_topic_and_older_records_read_as_not_replayed() -> None:
    target = resolve_target(ENDPOINTS, account_id="acct_a", endpoint_id=None)
    (delivery,) = replay_deliveries(encoded(), target, REGISTRY)
    assert Delivery.from_bytes(delivery.to_bytes()).replay
    older = orjson.loads(delivery.to_bytes().partition(b"\n")[0])  # a record of before:
    older["body"] = delivery.body.decode()  # one JSON object, body a string, no replay field
    del older["replay"]
    assert Delivery.from_bytes(orjson.dumps(older)).replay is False


# The command line ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "yesterday", "--account", "acct_a"], "cannot read time 'yesterday'"),
        (["--since", "-1h", "--until", "-2h", "--account", "acct_a"], "--until must be later"),
        (["--since", "-1h"], "--account ID or --endpoint ID"),
        (["--since", "-1h", "--reset-offsets", "--endpoint", "ep_1"], "cannot be combined"),
    ],
)
def test_bad_input_is_refused_before_touching_the_broker(
    args: list[str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = CliRunner().invoke(app, ["replay", *args])
    assert isinstance(result.exception, InvalidInput)
    assert message in str(result.exception)
    # Through the console script's entry point: the message, and exit code 2.
    monkeypatch.setattr(sys, "argv", ["velourcity", "replay", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    assert message in capsys.readouterr().err
