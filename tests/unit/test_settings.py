import ipaddress
import os

import pytest
from pydantic import ValidationError

from pipeline.settings import Settings, load_settings
from pipeline.topics import pipeline_topics


def test_environment_prefix_and_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VELOURCITY_KAFKA_BOOTSTRAP", "broker:29092")
    monkeypatch.setenv("VELOURCITY_TOPIC_PREFIX", "staging-")
    monkeypatch.setenv("VELOURCITY_ALLOWED_NETWORKS", "127.0.0.0/8, ::1/128")
    monkeypatch.setenv("VELOURCITY_RETRY_SCHEDULE", "1,2,2")
    settings = load_settings()
    assert settings.kafka_bootstrap == "broker:29092"
    assert settings.allowed_networks == [
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    ]
    assert settings.retry_schedule == [1.0, 2.0, 2.0]
    assert settings.group("velourcity-fanout") == "staging-velourcity-fanout"


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("VELOURCITY_")]:
        monkeypatch.delenv(name)
    settings = Settings()
    assert settings.kafka_bootstrap == "127.0.0.1:9092"
    assert settings.topic_prefix == ""
    assert settings.allowed_networks == []
    assert len(settings.retry_schedule) == 7


def test_prefix_reaches_every_topic() -> None:
    names = [t.name for t in pipeline_topics(Settings(topic_prefix="x-", retry_schedule="1,2,2"))]
    assert all(name.startswith("x-") for name in names)
    # one topic per distinct delay, and one of the breaker's cool-down (30 s)
    assert sorted(n for n in names if ".retry." in n) == [
        "x-velourcity.deliveries.retry.1s",
        "x-velourcity.deliveries.retry.2s",
        "x-velourcity.deliveries.retry.30s",
    ]


@pytest.mark.parametrize(
    ("name", "value"),
    [("allowed_networks", "10.0.0.0/33"), ("retry_schedule", "5,-1"), ("retry_schedule", "soon")],
)
def test_bad_settings_are_refused_clearly(name: str, value: str) -> None:
    with pytest.raises(ValidationError, match=name):
        Settings(**{name: value})
