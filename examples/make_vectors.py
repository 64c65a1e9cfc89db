"""Write test vectors for the example receivers: webhooks exactly as the pipeline sends them.

    python examples/make_vectors.py --out /tmp/vectors.json

Each vector is one request (headers and body bytes) built with the pipeline's own code
(``sample_event`` -> ``render_body`` -> ``Delivery`` -> ``webhook_headers``), the secrets
the *receiver* holds, the clock (``now``) to verify at, and the expected outcome. The
expected outcome is what the reference :func:`velourcity_webhooks.verify` does with it, so an
example that passes the vectors behaves like the SDK byte for byte; the script also checks
that the reference agrees with what each case is meant to show.

Not committed: the tests generate a fresh file each run (fresh ids, secrets and samples).
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import secrets as random_secrets
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from velourcity_webhooks import WebhookVerificationError, verify

from pipeline.delivery.record import Delivery, delivery_id_for
from pipeline.delivery.signing import webhook_headers
from pipeline.events.body import render_body
from pipeline.events.samples import sample_event

EVENT_TYPES = (
    "order.created",
    "order.driver_assigned",
    "order.picked_up",
    "order.delivered",
    "order.cancelled",
    "payment.completed",
)
ACCOUNT = "acct_examples"
ENDPOINT = "ep_examples"
TOLERANCE = 300


def new_secret(*, padded: bool = True) -> str:
    """A secret in the production format: ``whsec_`` + base64 of 32 random bytes."""
    encoded = base64.b64encode(random_secrets.token_bytes(32)).decode()
    # Other Standard Webhooks senders drop the '=' padding; receivers must accept both.
    return "whsec_" + (encoded if padded else encoded.rstrip("="))


def signed(
    event_type: str, secrets: list[str], *, timestamp: int, attempt: int = 1, rng: random.Random
) -> tuple[Delivery, bytes, dict[str, str]]:
    """One attempt of one delivery, as the sender (pipeline/delivery/handler.py) makes it."""
    event = sample_event(event_type, ACCOUNT, rng=rng)
    body = render_body(event)
    delivery = Delivery(
        delivery_id=delivery_id_for(event["id"], ENDPOINT),
        event_id=event["id"],
        event_type=event_type,
        account_id=ACCOUNT,
        endpoint_id=ENDPOINT,
        body=body,
        attempt=attempt,
        event_time=int(event["occurred_at"].timestamp() * 1000),
    )
    # The handler signs delivery.body: the same bytes render_body produced.
    raw = delivery.body
    return delivery, raw, webhook_headers(delivery, raw, secrets, timestamp=timestamp)


def standard_webhooks_headers(body: bytes, secret: str, msg_id: str, timestamp: int) -> dict:
    """Headers the official Standard Webhooks library (``standardwebhooks``) signs ``body`` with."""
    from standardwebhooks.webhooks import Webhook  # the dev extra has it

    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    return {
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": Webhook(secret).sign(msg_id, moment, body.decode()),
    }


def reference_outcome(
    headers: dict[str, str], body: bytes, secrets: list[str], now: int
) -> dict[str, Any]:
    """What the SDK's verify() does: the status a receiver answers, and the error's class."""
    try:
        event = verify(headers, body, secrets, tolerance=TOLERANCE, now=now)
    except WebhookVerificationError as exc:
        return {"status": exc.http_status, "error": type(exc).__name__, "event_id": None}
    return {"status": 200, "error": None, "event_id": event["id"]}


def build_vectors(seed: int | None = None) -> dict[str, Any]:
    rng = random.Random(seed)
    now = int(time.time())
    secret, old_secret, wrong = new_secret(), new_secret(), new_secret()
    vectors: list[dict[str, Any]] = []

    def add(
        name: str,
        headers: dict[str, str],
        body: bytes,
        receiver_secrets: list[str],
        expect: str | None,
        **extra: Any,
    ) -> None:
        outcome = reference_outcome(headers, body, receiver_secrets, now)
        if outcome["error"] != expect:  # the case would not show what its name says
            raise AssertionError(f"{name}: verify() gave {outcome['error']}, meant {expect}")
        vectors.append(
            {
                "name": name,
                "headers": headers,
                # base64 keeps the exact bytes; "body" is there for people reading the file.
                "body_b64": base64.b64encode(body).decode(),
                "body": body.decode(errors="replace"),
                "secrets": receiver_secrets,
                "expect": outcome,
                **extra,
            }
        )

    # One valid webhook of each type, signed with one secret, sent just now.
    for event_type in EVENT_TYPES:
        _, body, headers = signed(event_type, [secret], timestamp=now, rng=rng)
        add(event_type, headers, body, [secret], None, event_type=event_type)

    # A retry: attempt 2, later timestamp, same webhook-id; a receiver must process it once.
    delivery, body, headers = signed("order.created", [secret], timestamp=now - 60, rng=rng)
    add("first attempt", headers, body, [secret], None, dedupe_group="retry")
    retry = delivery.replace(attempt=2)
    add(
        "retry of the same delivery",
        webhook_headers(retry, body, [secret], timestamp=now),
        body,
        [secret],
        None,
        dedupe_group="retry",
    )

    # Rotation: both secrets sign webhook-signature, X-Velourcity-Signature uses the newest.
    _, body, headers = signed("order.delivered", [secret, old_secret], timestamp=now, rng=rng)
    add("rotation, receiver has the new secret", headers, body, [secret], None)
    add("rotation, receiver still has the old secret", headers, body, [old_secret], None)
    add("rotation, receiver has both", headers, body, [old_secret, secret], None)
    add("rotation, receiver has neither", headers, body, [wrong], "InvalidSignature")

    unpadded = new_secret(padded=False)
    _, body, headers = signed("order.picked_up", [unpadded], timestamp=now, rng=rng)
    add("secret without base64 padding", headers, body, [unpadded], None)

    _, body, headers = signed("payment.completed", [secret], timestamp=now, rng=rng)
    tampered = body.replace(b'"currency":"EUR"', b'"currency":"USD"')
    assert tampered != body
    add("tampered body", headers, tampered, [secret], "InvalidSignature")
    add("wrong secret", headers, body, [wrong], "InvalidSignature")
    forged = dict(headers, **{"X-Velourcity-Signature": "sha256=" + "0" * 64})
    add(
        "bad X-Velourcity-Signature, good webhook-signature",
        forged,
        body,
        [secret],
        "InvalidSignature",
    )
    velourcity_only = {k: v for k, v in headers.items() if not k.startswith("webhook-")}
    add(
        "X-Velourcity-Signature only (no Standard Webhooks headers)",
        velourcity_only,
        body,
        [secret],
        None,
    )
    standard_only = {k: v for k, v in headers.items() if k != "X-Velourcity-Signature"}
    add("Standard Webhooks headers only", standard_only, body, [secret], None)

    # What other senders produce with the official Standard Webhooks library (padded and not).
    for label, key in [("", secret), (", unpadded secret", unpadded)]:
        library = standard_webhooks_headers(body, key, "msg_" + rng.randbytes(8).hex(), now)
        add(f"Standard Webhooks library{label}", library, body, [key], None)
    stale = standard_webhooks_headers(body, secret, "msg_stale", now - TOLERANCE - 1)
    add("Standard Webhooks library, stale timestamp", stale, body, [secret], "StaleTimestamp")
    add("Standard Webhooks library, wrong secret", library, body, [wrong], "InvalidSignature")
    unsigned = {k: v for k, v in headers.items() if "Signature" not in k and "webhook-" not in k}
    add("no signature headers", unsigned, body, [secret], "MissingHeader")
    incomplete = {k: v for k, v in headers.items() if k != "webhook-timestamp"}
    add("webhook-timestamp missing", incomplete, body, [secret], "MissingHeader")
    # The signed content uses the timestamp as a number: a leading zero changes nothing.
    zero = dict(headers, **{"webhook-timestamp": "0" + headers["webhook-timestamp"]})
    add("webhook-timestamp with a leading zero", zero, body, [secret], None)
    garbled = dict(headers, **{"webhook-timestamp": "yesterday"})
    add("webhook-timestamp not a number", garbled, body, [secret], "InvalidSignature")

    # The timestamp window: signed correctly, but outside +-300 s of the receiver's clock.
    for label, timestamp, expect in [
        ("timestamp 301 s old", now - TOLERANCE - 1, "StaleTimestamp"),
        ("timestamp 301 s ahead", now + TOLERANCE + 1, "StaleTimestamp"),
        ("timestamp exactly 300 s old", now - TOLERANCE, None),
    ]:
        _, body, headers = signed("order.cancelled", [secret], timestamp=timestamp, rng=rng)
        add(label, headers, body, [secret], expect)

    # Authentic but not an event: correctly signed bytes that are not a JSON object.
    delivery, _, _ = signed("order.created", [secret], timestamp=now, rng=rng)
    for label, body in [("signed JSON array", b"[1,2,3]"), ("signed non-JSON", b"not json")]:
        add(
            label,
            webhook_headers(delivery, body, [secret], timestamp=now),
            body,
            [secret],
            "MalformedBody",
        )

    return {"now": now, "tolerance": TOLERANCE, "vectors": vectors}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--seed", type=int, default=None, help="seed for the sample data")
    args = parser.parse_args()
    data = build_vectors(args.seed)
    args.out.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    print(f"{len(data['vectors'])} vectors written to {args.out}")


if __name__ == "__main__":
    main()
