"""Secret rotation end to end: `velourcity endpoints rotate-secret`, a real worker, a real
receiver. During the grace period a partner on the old secret or the new one verifies every
webhook; after a rotation with no grace only the newest secret does."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import Received, settings_env
from standardwebhooks.webhooks import Webhook

from pipeline.events.samples import sample_event
from pipeline.publisher import Publisher
from pipeline.receiver import InvalidSignature, velourcity_signature, verify
from pipeline.settings import Settings
from pipeline.topics import create_topics

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.timeout(180)]


def velourcity(settings: Settings, *command: str) -> dict[str, Any]:
    done = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "velourcity"), *command],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    shown: dict[str, Any] = orjson.loads(done.stdout)
    return shown


def rotate(settings: Settings, endpoint_id: str, grace: str) -> dict[str, Any]:
    return velourcity(
        settings, "endpoints", "rotate-secret", endpoint_id, "--grace", grace, "--json"
    )


def publish_one(settings: Settings) -> str:
    event = sample_event("order.created", "acct_a")
    with Publisher(settings) as publisher:
        publisher.send(event)
        publisher.flush()
    return str(event["id"])


def headers_of(request: Received) -> dict[str, str]:
    return {k.lower(): v for k, v in request.headers.items()}


def test_both_secrets_verify_during_the_grace_and_only_the_new_one_after(
    database_settings, receiver_factory, worker_factory
) -> None:
    kafka_settings = database_settings  # the CLI writes the endpoints in PostgreSQL
    create_topics(kafka_settings)
    receiver = receiver_factory()
    created = velourcity(
        kafka_settings,
        "endpoints",
        "create",
        "--account",
        "acct_a",
        "--url",
        receiver.url,
        "--json",
    )
    old = created["secret"]
    rotated = rotate(kafka_settings, created["id"], "1h")
    new = rotated["secret"]
    assert new != old and rotated["id"] == created["id"]
    assert rotated["previous_secret_expires_at"].endswith("Z")
    worker_factory(kafka_settings)  # its copy of the endpoints holds the rotation

    publish_one(kafka_settings)
    (request,) = receiver.wait_for(1)
    headers = headers_of(request)
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert headers["x-velourcity-signature"] == velourcity_signature(request.body, new)
    for secret in (old, new):  # a partner on either secret accepts it...
        assert verify(headers, request.body, secret)["account_id"] == "acct_a"
        standard = {k: v for k, v in headers.items() if k.startswith("webhook-")}
        Webhook(secret).verify(request.body, standard)  # ...with any Standard Webhooks library
    with pytest.raises(InvalidSignature):  # X-Velourcity-Signature is the new secret's only
        verify({"x-velourcity-signature": headers["x-velourcity-signature"]}, request.body, old)

    newest = rotate(kafka_settings, created["id"], "0")["secret"]
    time.sleep(3)  # let the worker's copy of the endpoints see it
    publish_one(kafka_settings)
    request = receiver.wait_for(2)[1]
    headers = headers_of(request)
    assert len(headers["webhook-signature"].split(" ")) == 1
    assert verify(headers, request.body, newest)["account_id"] == "acct_a"
    for retired in (old, new):
        with pytest.raises(InvalidSignature):
            verify(headers, request.body, retired)
