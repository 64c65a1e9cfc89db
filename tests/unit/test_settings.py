import ipaddress
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from pipeline.exceptions import ConfigurationError
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


@pytest.mark.parametrize(
    ("value", "level"),
    [
        ("warning", "warn"),
        ("WARNING", "warn"),
        ("warn", "warn"),
        ("DEBUG", "debug"),
        ("Info", "info"),
    ],
)
def test_log_levels_take_pythons_names_too(
    monkeypatch: pytest.MonkeyPatch, value: str, level: str
) -> None:
    monkeypatch.setenv("VELOURCITY_LOG_LEVEL", value)
    assert load_settings().log_level == level


def test_a_bad_setting_is_one_line_naming_it_and_what_is_accepted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VELOURCITY_LOG_LEVEL", "loud")
    monkeypatch.setenv("VELOURCITY_LOG_FORMAT", "xml")
    monkeypatch.setenv("VELOURCITY_ADMIN_TOKEN", "x")
    with pytest.raises(ConfigurationError) as raised:
        load_settings()
    message = str(raised.value)
    assert "\n" not in message
    assert "VELOURCITY_LOG_LEVEL='loud': accepted: debug, info, warn (or warning), error" in message
    assert "VELOURCITY_LOG_FORMAT='xml': accepted: 'json' or 'console'" in message


def test_secrets_are_never_echoed() -> None:
    with pytest.raises(ConfigurationError) as raised:
        load_settings(admin_token=["not", "a", "string"])
    assert "VELOURCITY_ADMIN_TOKEN=<hidden>" in str(raised.value)
    assert "not" not in str(raised.value).replace("<hidden>", "")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mysql://u:hunter2@db/x", "accepted: postgresql://"),
        ("postgresql://u:hunter2@db:port/x", "not a URL"),
        ("postgresql://u:hunter2@db:5432", "name the database"),
    ],
)
def test_a_bad_database_url_is_one_line_without_its_password(url: str, says: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        load_settings(database_url=url)
    message = str(raised.value)
    assert "\n" not in message
    assert f"VELOURCITY_DATABASE_URL=<hidden>: {says}" in message
    assert "hunter2" not in message


def test_a_database_url_is_taken_as_given() -> None:
    url = "postgres://app:pw@db.internal:6432/hooks?sslmode=require"
    assert load_settings(database_url=url).database_url == url


def test_the_cli_prints_one_line_and_fails(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VELOURCITY_")}
    env["VELOURCITY_LOG_LEVEL"] = "verbose"
    done = subprocess.run(
        [sys.executable, "-c", "from pipeline.cli import main; main()", "topics", "list"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == (
        "error: invalid setting VELOURCITY_LOG_LEVEL='verbose': "
        "accepted: debug, info, warn (or warning), error, in any case\n"
    )
