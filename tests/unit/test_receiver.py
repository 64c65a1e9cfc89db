"""Partner-side verification (pipeline.receiver) and the local inspector (velourcity receiver)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook

from pipeline.cli.receiver import format_record, make_server
from pipeline.idempotency import DEFAULT_WINDOW_SECONDS, IdempotencyStore, MemoryIdempotencyStore
from pipeline.receiver import (
    InvalidSignature,
    MalformedBody,
    MissingHeader,
    StaleTimestamp,
    WebhookVerificationError,
    sign,
    standard_signature,
    velourcity_signature,
    verify,
)
from pipeline.settings import Settings

NOW = 1_760_000_000
EVENT: dict[str, Any] = {
    "id": "evt_01JTEST",
    "type": "order.created",
    "created_at": "2025-10-09T08:53:20Z",
    "account_id": "acct_42",
    "data": {"order_id": "ord_1", "total": {"amount": 2350, "currency": "EUR"}},
}
BODY = json.dumps(EVENT).encode()


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


SECRET = new_secret()
OTHER = new_secret()


def signed(body: bytes = BODY, secret: str = SECRET, *, ts: int = NOW) -> dict[str, str]:
    """The full header set the sender puts on a webhook."""
    return {
        "Content-Type": "application/json",
        "User-Agent": "Velourcity-Webhooks/1.0",
        "X-Velourcity-Event": "order.created",
        "X-Velourcity-Delivery-Attempt": "1",
        "X-Velourcity-Event-Id": EVENT["id"],
        "X-Velourcity-Delivery-Id": "dlv_1",
        **sign(body, secret, webhook_id=str(EVENT["id"]), timestamp=ts),
    }


def test_sign_then_verify_round_trip() -> None:
    headers = sign(BODY, SECRET, webhook_id="evt_1", timestamp=NOW)
    assert set(headers) == {
        "X-Velourcity-Signature",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    }
    assert headers["webhook-timestamp"] == str(NOW)
    assert verify(headers, BODY, SECRET, now=NOW) == EVENT


def test_our_standard_signature_verifies_with_standardwebhooks() -> None:
    headers = sign(BODY, SECRET, webhook_id="evt_1", timestamp=int(time.time()))
    assert Webhook(SECRET).verify(BODY, headers) == EVENT


def test_standardwebhooks_signature_verifies_with_ours() -> None:
    when = datetime.now(UTC).replace(microsecond=0)
    signature = Webhook(SECRET).sign("evt_1", when, BODY.decode())
    headers = {
        "webhook-id": "evt_1",
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": signature,
    }
    assert verify(headers, BODY, SECRET) == EVENT
    assert signature == standard_signature(BODY, SECRET, "evt_1", int(when.timestamp()))


def test_velourcity_signature_is_plain_hmac_of_body_with_whole_secret() -> None:
    expected = hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    assert velourcity_signature(BODY, SECRET) == f"sha256={expected}"
    assert sign(BODY, SECRET, webhook_id="e", timestamp=NOW)["X-Velourcity-Signature"] == (
        f"sha256={expected}"
    )


def test_each_scheme_alone_is_enough() -> None:
    headers = signed()
    velourcity_only = {"X-Velourcity-Signature": headers["X-Velourcity-Signature"]}
    standard_only = {k: v for k, v in headers.items() if k.startswith("webhook-")}
    assert verify(velourcity_only, BODY, SECRET, now=NOW + 86_400) == EVENT
    assert verify(standard_only, BODY, SECRET, now=NOW) == EVENT


STANDARD = ("webhook-id", "webhook-timestamp", "webhook-signature")


def without(headers: dict[str, str], *names: str) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k not in names}


FAILURES: list[tuple[str, Callable[[], tuple[dict[str, str], bytes, str, float]], type]] = [
    ("no headers", lambda: ({}, BODY, SECRET, NOW), MissingHeader),
    (
        "no signature headers",
        lambda: (without(signed(), "X-Velourcity-Signature", *STANDARD), BODY, SECRET, NOW),
        MissingHeader,
    ),
    (
        "incomplete standard set",
        lambda: (without(signed(), "webhook-timestamp"), BODY, SECRET, NOW),
        MissingHeader,
    ),
    (
        "bad velourcity signature",
        lambda: ({**signed(), "X-Velourcity-Signature": "sha256=" + "0" * 64}, BODY, SECRET, NOW),
        InvalidSignature,
    ),
    (
        "bad standard signature",
        lambda: ({**signed(), "webhook-signature": "v1," + "A" * 44}, BODY, SECRET, NOW),
        InvalidSignature,
    ),
    (
        "unreadable signature header",
        lambda: ({**signed(), "X-Velourcity-Signature": "md5=abc"}, BODY, SECRET, NOW),
        InvalidSignature,
    ),
    (
        "tampered body",
        lambda: (signed(), BODY.replace(b"2350", b"1"), SECRET, NOW),
        InvalidSignature,
    ),
    ("wrong secret", lambda: (signed(), BODY, OTHER, NOW), InvalidSignature),
    ("older than tolerance", lambda: (signed(), BODY, SECRET, NOW + 301), StaleTimestamp),
    ("newer than tolerance", lambda: (signed(), BODY, SECRET, NOW - 301), StaleTimestamp),
    (
        "non-integer timestamp",
        lambda: ({**signed(), "webhook-timestamp": "17e8"}, BODY, SECRET, NOW),
        InvalidSignature,
    ),
    ("malformed JSON", lambda: (signed(b"{not json"), b"{not json", SECRET, NOW), MalformedBody),
    ("JSON but not an object", lambda: (signed(b"[1, 2]"), b"[1, 2]", SECRET, NOW), MalformedBody),
]


@pytest.mark.parametrize(
    ("case", "error"), [(c, e) for _, c, e in FAILURES], ids=[name for name, _, _ in FAILURES]
)
def test_each_failure_raises_its_own_error(
    case: Callable[[], tuple[dict[str, str], bytes, str, float]], error: type[Exception]
) -> None:
    headers, body, secret, now = case()
    with pytest.raises(error) as caught:
        verify(headers, body, secret, now=now)
    assert isinstance(caught.value, WebhookVerificationError)
    assert type(caught.value) is error
    assert str(caught.value)
    for shown in (str(caught.value), repr(caught.value)):
        assert SECRET not in shown
        assert SECRET.removeprefix("whsec_") not in shown


def test_error_classes_carry_the_status_to_answer() -> None:
    assert [e.http_status for e in (MissingHeader, MalformedBody)] == [400, 400]
    assert [e.http_status for e in (InvalidSignature, StaleTimestamp)] == [401, 401]
    assert issubclass(WebhookVerificationError, Exception)


def test_absurd_input_is_a_verification_error_not_a_crash() -> None:
    huge = {**signed(), "webhook-timestamp": "9" * 5000}  # int() refuses > 4300 digits
    with pytest.raises(InvalidSignature, match="integer unix seconds"):
        verify(huge, BODY, SECRET, now=NOW)
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(MalformedBody):
        verify(signed(deep), deep, SECRET, now=NOW)


def test_text_body_is_a_type_error_bytes_like_are_fine() -> None:
    with pytest.raises(TypeError, match="bytes as received"):
        verify(signed(), BODY.decode(), SECRET, now=NOW)  # type: ignore[arg-type]
    assert verify(signed(), bytearray(BODY), SECRET, now=NOW) == EVENT
    assert verify(signed(), memoryview(BODY), SECRET, now=NOW) == EVENT


def test_unusable_secret_error_does_not_echo_it() -> None:
    bad = "whsec_c2VjcmV0*not-base64"
    with pytest.raises(ValueError, match="secret") as caught:
        verify(signed(), BODY, bad, now=NOW)
    assert "c2VjcmV0" not in str(caught.value)
    assert "c2VjcmV0" not in repr(caught.value.__cause__)


def test_timestamp_exactly_at_tolerance_is_accepted() -> None:
    assert verify(signed(), BODY, SECRET, now=NOW + 300) == EVENT
    assert verify(signed(), BODY, SECRET, now=NOW - 60, tolerance=60) == EVENT


def test_unusable_secrets_are_a_value_error() -> None:
    bad_secrets: list[str | list[str]] = ["", "whsec_", "whsec_not*base64!", []]
    for bad in bad_secrets:
        with pytest.raises(ValueError, match="secret"):
            verify(signed(), BODY, bad, now=NOW)


def test_rotation_any_of_several_secrets() -> None:
    assert verify(signed(secret=OTHER), BODY, [SECRET, OTHER], now=NOW) == EVENT
    assert verify(signed(secret=SECRET), BODY, (SECRET, OTHER), now=NOW) == EVENT
    with pytest.raises(InvalidSignature):
        verify(signed(secret=new_secret()), BODY, [SECRET, OTHER], now=NOW)


def test_rotation_several_signatures_in_one_header() -> None:
    old, new = (sign(BODY, s, webhook_id="evt_1", timestamp=NOW) for s in (OTHER, SECRET))
    headers = {
        "X-Velourcity-Signature": " ".join(h["X-Velourcity-Signature"] for h in (old, new)),
        "webhook-id": "evt_1",
        "webhook-timestamp": str(NOW),
        "webhook-signature": f"{old['webhook-signature']} {new['webhook-signature']}",
    }
    assert verify(headers, BODY, SECRET, now=NOW) == EVENT
    assert verify(headers, BODY, OTHER, now=NOW) == EVENT
    now = int(time.time())
    rotated = sign(BODY, SECRET, webhook_id="evt_1", timestamp=now)["webhook-signature"]
    both = f"{standard_signature(BODY, OTHER, 'evt_1', now)} {rotated}"
    headers = {"webhook-id": "evt_1", "webhook-timestamp": str(now), "webhook-signature": both}
    assert Webhook(SECRET).verify(BODY, headers) == EVENT


@pytest.mark.parametrize("case", [str.lower, str.upper, str.title])
def test_header_names_are_case_insensitive(case: Callable[[str], str]) -> None:
    headers = {case(k): v for k, v in signed().items()}
    assert verify(headers, BODY, SECRET, now=NOW) == EVENT
    assert verify(httpx.Headers(headers), BODY, SECRET, now=NOW) == EVENT


# --- the inspector -------------------------------------------------------------------------

ServerFactory = Callable[..., tuple[str, list[dict[str, Any]]]]


@pytest.fixture
def inspector_factory() -> Iterator[ServerFactory]:
    """Start inspectors on a free loopback port; returns (base URL, records seen)."""
    running: list[tuple[ThreadingHTTPServer, threading.Thread]] = []

    def start(**options: Any) -> tuple[str, list[dict[str, Any]]]:
        records: list[dict[str, Any]] = []
        server = make_server("127.0.0.1", 0, on_request=records.append, **options)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        running.append((server, thread))
        return f"http://127.0.0.1:{server.server_address[1]}", records

    yield start
    for server, thread in running:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_inspector_verifies_fails_first_then_answers(inspector_factory: ServerFactory) -> None:
    url, records = inspector_factory(secrets=[OTHER, SECRET], fail_first=1, status=202)
    ts = int(time.time())
    with httpx.Client(base_url=url, timeout=10) as client:
        first = client.post("/hooks", content=BODY, headers=signed(ts=ts))
        retry = client.post("/hooks", content=BODY, headers=signed(ts=ts))
        unsigned = client.post("/hooks", content=BODY, headers={"X-Velourcity-Event": "x"})
        tampered = client.post("/x", content=BODY + b" ", headers=signed(ts=ts))
        stale = client.post("/hooks", content=BODY, headers=signed(ts=ts - 3600))
    assert [r.status_code for r in (first, retry, unsigned, tampered, stale)] == [
        500,
        202,
        401,
        401,
        401,
    ]
    assert first.json() == {"ok": False}
    assert retry.json() == {"ok": True}
    assert unsigned.json() == {"ok": False}
    assert [r["status"] for r in records] == [500, 202, 401, 401, 401]
    assert records[1]["verified"] == {"velourcity": True, "standard": True}
    assert records[1]["error"] is None
    assert records[1]["body"] == EVENT
    assert records[1]["webhook_id"] == EVENT["id"]
    assert records[2]["verified"] == {"velourcity": None, "standard": None}
    assert "MissingHeader" in records[2]["error"]
    assert records[3]["verified"] == {"velourcity": False, "standard": False}
    assert records[3]["path"] == "/x"
    assert records[4]["verified"] == {"velourcity": True, "standard": False}
    assert "StaleTimestamp" in records[4]["error"]


def test_inspector_without_secrets_accepts_everything(inspector_factory: ServerFactory) -> None:
    url, records = inspector_factory(status=204)
    with httpx.Client(base_url=url, timeout=10) as client:
        answer = client.post("/", content=b"not json")
    assert answer.status_code == 204
    assert records[0]["verified"] is None
    assert records[0]["body"] is None
    assert records[0]["raw_body"] == "not json"


def test_format_record_first_line() -> None:
    record = {
        "received_at": "2025-10-09T08:53:20.000+00:00",
        "path": "/hooks",
        "webhook_id": EVENT["id"],
        "headers": signed(),
        "body": EVENT,
        "raw_body": BODY.decode(),
        "verified": {"velourcity": True, "standard": False},
        "error": "StaleTimestamp: too old",
        "status": 401,
    }
    line = format_record(record, quiet=True)
    assert line == (
        f"← order.created  attempt 1  {EVENT['id']}  signatures: velourcity ✓ standard ✗"
        "  → 401  (StaleTimestamp: too old)"
    )
    full = format_record(record)
    assert full.startswith(line + "\n")
    assert "  X-Velourcity-Event: order.created" in full
    assert '    "order_id": "ord_1",' in full


def test_receiver_command_prints_and_logs(tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    run = "import typer; from pipeline.cli.receiver import receiver; typer.run(receiver)"
    args = ["--port", "0", "--secret", SECRET, "--fail-first", "1", "--log-json", str(log), "-q"]
    with subprocess.Popen(
        [sys.executable, "-c", run, *args], stdout=subprocess.PIPE, text=True, encoding="utf-8"
    ) as proc:
        try:
            assert proc.stdout is not None
            banner = proc.stdout.readline()
            port = re.search(r"http://127\.0\.0\.1:(\d+)", banner)
            assert port, banner
            headers = signed(ts=int(time.time()))
            with httpx.Client(base_url=f"http://127.0.0.1:{port[1]}", timeout=10) as client:
                codes = [client.post("/", content=BODY, headers=headers).status_code for _ in "ab"]
            assert codes == [500, 200]
            assert "→ 500" in proc.stdout.readline()
            assert "→ 200" in proc.stdout.readline()
            proc.send_signal(signal.SIGINT)
            out, _ = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, out
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["status"] for r in lines] == [500, 200]
    assert lines[1]["verified"] == {"velourcity": True, "standard": True}


# --- properties (hypothesis): sign -> verify over arbitrary bodies, secrets and clocks --------

PROPERTY = settings(max_examples=150, deadline=None, database=None)
JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
JSON_OBJECTS = st.dictionaries(st.text(), JSON_VALUES, max_size=6)
SECRETS = st.binary(min_size=1, max_size=64).map(
    lambda key: "whsec_" + base64.b64encode(key).decode()
)
IDS = st.text(min_size=1, max_size=40)
TIMESTAMPS = st.integers(min_value=0, max_value=10**11)


def _sent(body: bytes, secrets_newest_first: list[str], webhook_id: str, ts: int) -> dict[str, str]:
    """Headers as the sender builds them (pipeline.delivery.signing), rotation included."""
    return {
        "X-Velourcity-Signature": velourcity_signature(body, secrets_newest_first[0]),
        "webhook-id": webhook_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": " ".join(
            standard_signature(body, s, webhook_id, ts) for s in secrets_newest_first
        ),
    }


@PROPERTY
@given(
    event=JSON_OBJECTS,
    ascii_only=st.booleans(),
    secret=SECRETS,
    webhook_id=IDS,
    ts=TIMESTAMPS,
)
def test_any_json_object_round_trips(
    event: dict[str, Any], ascii_only: bool, secret: str, webhook_id: str, ts: int
) -> None:
    body = json.dumps(event, ensure_ascii=ascii_only).encode()
    assert verify(
        sign(body, secret, webhook_id=webhook_id, timestamp=ts), body, secret, now=ts
    ) == (event)


@PROPERTY
@given(body=st.binary(max_size=512), secret=SECRETS, webhook_id=IDS, ts=TIMESTAMPS)
def test_any_bytes_pass_the_signature_checks(
    body: bytes, secret: str, webhook_id: str, ts: int
) -> None:
    """Whatever the bytes, a correct signature is accepted; only the JSON check may refuse."""
    headers = sign(body, secret, webhook_id=webhook_id, timestamp=ts)
    try:
        event = verify(headers, body, secret, now=ts)
    except MalformedBody:
        return
    assert event == json.loads(body)


@PROPERTY
@given(
    body=st.binary(min_size=1, max_size=512),
    data=st.data(),
    secret=SECRETS,
    scheme=st.sampled_from(["both", "velourcity", "standard"]),
)
def test_changing_any_byte_fails(
    body: bytes, data: st.DataObject, secret: str, scheme: str
) -> None:
    headers = sign(body, secret, webhook_id="evt_1", timestamp=NOW)
    if scheme == "velourcity":
        headers = without(headers, *STANDARD)
    elif scheme == "standard":
        headers = without(headers, "X-Velourcity-Signature")
    index = data.draw(st.integers(0, len(body) - 1), label="index")
    flip = data.draw(st.integers(1, 255), label="xor")
    tampered = body[:index] + bytes([body[index] ^ flip]) + body[index + 1 :]
    with pytest.raises(InvalidSignature):
        verify(headers, tampered, secret, now=NOW)
    for longer_or_shorter in (body + b" ", body[:-1]):
        with pytest.raises(InvalidSignature):
            verify(headers, longer_or_shorter, secret, now=NOW)


@PROPERTY
@given(event=JSON_OBJECTS, signer=SECRETS, verifier=SECRETS, webhook_id=IDS)
def test_wrong_secret_fails(
    event: dict[str, Any], signer: str, verifier: str, webhook_id: str
) -> None:
    assume(base64.b64decode(signer[6:]) != base64.b64decode(verifier[6:]))
    body = json.dumps(event).encode()
    headers = sign(body, signer, webhook_id=webhook_id, timestamp=NOW)
    with pytest.raises(InvalidSignature):
        verify(headers, body, verifier, now=NOW)


@PROPERTY
@given(
    event=JSON_OBJECTS,
    secret=SECRETS,
    tolerance=st.integers(0, 86_400),
    beyond=st.integers(1, 10**9),
    within=st.floats(0, 1),
    past=st.booleans(),
)
def test_timestamp_window(
    event: dict[str, Any], secret: str, tolerance: int, beyond: int, within: float, past: bool
) -> None:
    body = json.dumps(event).encode()
    headers = sign(body, secret, webhook_id="evt_1", timestamp=NOW)
    sign_of = 1 if past else -1
    inside = NOW + sign_of * int(tolerance * within)
    assert verify(headers, body, secret, now=inside, tolerance=tolerance) == event
    outside = NOW + sign_of * (tolerance + beyond)
    with pytest.raises(StaleTimestamp):
        verify(headers, body, secret, now=outside, tolerance=tolerance)


@PROPERTY
@given(
    event=JSON_OBJECTS,
    keys=st.lists(st.binary(min_size=16, max_size=32), min_size=3, max_size=3, unique=True),
    webhook_id=IDS,
)
def test_rotation_accepts_old_and_new_secret(
    event: dict[str, Any], keys: list[bytes], webhook_id: str
) -> None:
    old, new, stranger = ("whsec_" + base64.b64encode(k).decode() for k in keys)
    body = json.dumps(event).encode()
    headers = _sent(body, [new, old], webhook_id, NOW)  # newest first, as the sender signs
    for held in (old, new, [old, new], [new, old]):
        assert verify(headers, body, held, now=NOW) == event
    with pytest.raises(InvalidSignature):
        verify(headers, body, stranger, now=NOW)
    with pytest.raises(StaleTimestamp):
        verify(headers, body, old, now=NOW + 301)


# --- idempotency ---------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_idempotency_store_remembers_for_its_window() -> None:
    clock = FakeClock()
    store = MemoryIdempotencyStore(window=60, clock=clock)
    assert isinstance(store, IdempotencyStore)
    assert store.seen_before("evt_1") is False
    assert store.seen_before("evt_1") is True
    clock.now += 59.9
    assert store.seen_before("evt_1") is True
    assert store.seen_before("evt_2") is False
    clock.now += 0.1  # evt_1's window is over; evt_2's is not
    assert store.seen_before("evt_1") is False
    assert store.seen_before("evt_2") is True
    assert len(store) == 2
    clock.now += 3600
    assert len(store) == 0


def test_idempotency_store_forget_and_bounded_memory() -> None:
    store = MemoryIdempotencyStore(max_entries=3)
    assert [store.seen_before(f"evt_{i}") for i in range(5)] == [False] * 5
    assert len(store) == 3
    assert store.seen_before("evt_0") is False  # evicted as the oldest
    assert store.seen_before("evt_4") is True
    store.forget("evt_4")
    store.forget("never_seen")
    assert store.seen_before("evt_4") is False


def test_idempotency_default_window_outlasts_the_retry_schedule() -> None:
    whole_schedule = sum(Settings().retry_schedule)  # first attempt to last, about 27.6 hours
    assert whole_schedule + 300 < DEFAULT_WINDOW_SECONDS


def test_idempotency_store_is_atomic_across_threads() -> None:
    store = MemoryIdempotencyStore()
    barrier = threading.Barrier(16)
    answers: list[bool] = []
    lock = threading.Lock()

    def claim() -> None:
        barrier.wait()
        for i in range(200):
            seen = store.seen_before(f"evt_{i}")
            with lock:
                answers.append(seen)

    threads = [threading.Thread(target=claim) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert answers.count(False) == 200  # each id claimed exactly once
    assert len(answers) == 16 * 200


def test_idempotency_store_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="window"):
        MemoryIdempotencyStore(window=0)
    with pytest.raises(ValueError, match="max_entries"):
        MemoryIdempotencyStore(max_entries=0)
