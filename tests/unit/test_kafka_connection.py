"""One Kafka connection configuration: settings checks, the mapping to each client library,
and no client of the project built around it."""

from __future__ import annotations

import ast
import socket
import ssl
import time
from pathlib import Path

import pytest

from pipeline.exceptions import ConfigurationError, KafkaConnectionError
from pipeline.kafka.config import consumer_config, producer_config
from pipeline.kafka.connection import (
    aiokafka_kwargs,
    check_connection,
    faust_broker,
    librdkafka_config,
)
from pipeline.settings import Settings, load_settings
from pipeline.topics import replication

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "s3cr3t-never-shown"


@pytest.fixture
def ca_file() -> Path:
    """A real file of CA certificates (certifi's bundle)."""
    import certifi

    return Path(certifi.where())


def sasl_ssl(ca_file: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "kafka_bootstrap": "b1:9094,b2:9094",
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_mechanism": "SCRAM-SHA-512",
        "kafka_sasl_username": "velourcity",
        "kafka_sasl_password": PASSWORD,
        "kafka_ssl_ca_location": str(ca_file),
    } | overrides
    return Settings(**values)  # type: ignore[arg-type]


def test_librdkafka_names_carry_tls_sasl_and_extra(ca_file: Path) -> None:
    settings = sasl_ssl(ca_file, kafka_extra="client.rack=az1, socket.keepalive.enable=true")
    config = librdkafka_config(settings, **{"acks": "all"})
    assert config == {
        "bootstrap.servers": "b1:9094,b2:9094",
        "security.protocol": "sasl_ssl",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "velourcity",
        "sasl.password": PASSWORD,
        "ssl.endpoint.identification.algorithm": "https",
        "ssl.ca.location": str(ca_file),
        "client.rack": "az1",
        "socket.keepalive.enable": "true",
        "acks": "all",
    }


def test_the_pipeline_s_own_client_settings_win_over_extra(ca_file: Path) -> None:
    settings = sasl_ssl(ca_file, kafka_extra='{"acks": "1", "linger.ms": 50}')
    assert producer_config(settings)["acks"] == "all"
    assert consumer_config(settings, group="g")["group.id"] == "g"
    assert consumer_config(settings, group="g")["security.protocol"] == "sasl_ssl"
    assert librdkafka_config(settings)["linger.ms"] == "50"


def test_plaintext_is_just_the_bootstrap() -> None:
    assert librdkafka_config(Settings(kafka_bootstrap="k:9092")) == {
        "bootstrap.servers": "k:9092",
        "security.protocol": "plaintext",
    }


def test_aiokafka_and_faust_get_the_same_connection(ca_file: Path) -> None:
    settings = sasl_ssl(ca_file, kafka_ssl_check_hostname=False)
    kwargs = aiokafka_kwargs(settings)
    assert kwargs["bootstrap_servers"] == "b1:9094,b2:9094"
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kwargs["sasl_plain_username"] == "velourcity"
    assert kwargs["sasl_plain_password"] == PASSWORD
    context = kwargs["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is False

    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    broker = faust_broker(settings)
    assert broker["broker"] == ["kafka://b1:9094", "kafka://b2:9094"]
    auth = credentials_to_aiokafka_auth(broker["broker_credentials"])
    assert auth["security_protocol"] == "SASL_SSL"
    assert auth["sasl_mechanism"] == "SCRAM-SHA-512"
    assert auth["sasl_plain_password"] == PASSWORD
    assert PASSWORD not in repr(broker["broker_credentials"])


def test_the_password_is_in_no_repr_nor_error(ca_file: Path) -> None:
    settings = sasl_ssl(ca_file, kafka_extra="sasl.oauthbearer.config=hidden-too")
    assert PASSWORD not in repr(settings)
    assert "hidden-too" not in repr(settings)
    with pytest.raises(ConfigurationError) as caught:
        load_settings(
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_mechanism="SCRAM-SHA-1",
            kafka_sasl_username="u",
            kafka_sasl_password=PASSWORD,
        )
    assert PASSWORD not in str(caught.value)
    assert "VELOURCITY_KAFKA_SASL_MECHANISM" in str(caught.value)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"kafka_security_protocol": "SASL_SSL"}, "needs VELOURCITY_KAFKA_SASL_MECHANISM"),
        (
            {
                "kafka_security_protocol": "SASL_PLAINTEXT",
                "kafka_sasl_mechanism": "PLAIN",
                "kafka_sasl_username": "u",
            },
            "needs VELOURCITY_KAFKA_SASL_PASSWORD",
        ),
        ({"kafka_sasl_username": "u"}, "SECURITY_PROTOCOL is PLAINTEXT: use SASL_SSL"),
        ({"kafka_ssl_ca_location": "/no/such.pem"}, "SECURITY_PROTOCOL is PLAINTEXT: use SSL"),
        (
            {"kafka_security_protocol": "SSL", "kafka_ssl_ca_location": "/no/such.pem"},
            "VELOURCITY_KAFKA_SSL_CA_LOCATION=/no/such.pem: no such file",
        ),
        (
            {"kafka_security_protocol": "SSL", "kafka_ssl_key_location": "/k.pem"},
            "needs both VELOURCITY_KAFKA_SSL_CERTIFICATE_LOCATION",
        ),
        ({"kafka_security_protocol": "TLS"}, "VELOURCITY_KAFKA_SECURITY_PROTOCOL='TLS': accepted"),
        ({"kafka_extra": "linger.ms"}, "VELOURCITY_KAFKA_EXTRA=<hidden>: takes a JSON object"),
        ({"kafka_extra": "{nope"}, "VELOURCITY_KAFKA_EXTRA=<hidden>: not valid JSON"),
    ],
)
def test_combinations_that_cannot_work_are_one_line(values: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(**values)
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message


def test_the_environment_of_a_child_process_keeps_the_connection(ca_file: Path) -> None:
    settings = sasl_ssl(ca_file, kafka_extra='{"client.rack": "az1"}')
    env = settings.as_environment()
    assert env["VELOURCITY_KAFKA_SASL_PASSWORD"] == PASSWORD
    assert env["VELOURCITY_KAFKA_EXTRA"] == '{"client.rack": "az1"}'
    child = Settings(
        **{
            k.removeprefix("VELOURCITY_").lower(): v
            for k, v in env.items()
            if k.startswith("VELOURCITY_KAFKA_")
        }
    )  # type: ignore[arg-type]
    assert librdkafka_config(child) == librdkafka_config(settings)


# No client built around the one configuration ---------------------------------------------

CLIENTS = {
    "Producer",
    "Consumer",
    "AdminClient",
    "KafkaConsumer",
    "SerializingProducer",
    "DeserializingConsumer",
    "AIOKafkaConsumer",
    "AIOKafkaProducer",
    "AIOKafkaAdminClient",
    "App",
}
BUILDERS = (
    "librdkafka_config(",
    "producer_config(",
    "consumer_config(",
    "aiokafka_kwargs(",
    "faust_broker(",
)
WRAPPERS = {
    # the thin wrappers are handed a configuration their callers built with a builder
    ("pipeline/kafka/producer.py", "Producer(config)"),
    ("pipeline/kafka/consumer.py", "Consumer(config)"),
}


def _client_constructions() -> list[tuple[str, int, str]]:
    found = []
    paths = [*ROOT.glob("pipeline/**/*.py"), *ROOT.glob("tools/**/*.py")]
    for path in paths:
        text = path.read_text()
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in CLIENTS:
                source = ast.get_source_segment(text, node) or ""
                found.append((str(path.relative_to(ROOT)), node.lineno, source))
    return found


def test_every_kafka_client_is_built_from_the_one_configuration() -> None:
    constructions = _client_constructions()
    assert len(constructions) > 25  # the scan sees the project's clients
    stray = [
        f"{path}:{line}: {source.splitlines()[0]}"
        for path, line, source in constructions
        if not any(builder in source for builder in BUILDERS) and (path, source) not in WRAPPERS
    ]
    assert stray == []


def test_the_faust_app_gets_broker_and_credentials_from_the_module() -> None:
    apps = [c for c in _client_constructions() if c[2].startswith("faust.App(")]
    assert apps
    assert all("**faust_broker(settings)" in source for _path, _line, source in apps)


def test_bootstrap_servers_is_named_only_in_the_connection_module() -> None:
    named = [
        str(path.relative_to(ROOT))
        for path in [*ROOT.glob("pipeline/**/*.py"), *ROOT.glob("tools/**/*.py")]
        if "bootstrap.servers" in path.read_text() or "bootstrap_servers=" in path.read_text()
    ]
    assert named == ["pipeline/kafka/connection.py"]


# Replication and the connection check --------------------------------------------------------


@pytest.mark.parametrize(
    ("brokers", "values", "expected"),
    [
        (1, {}, (1, 1)),
        (2, {}, (1, 1)),
        (3, {}, (3, 2)),
        (5, {}, (3, 2)),
        (3, {"replication_factor": 2}, (2, 1)),
        (1, {"replication_factor": 3, "min_insync_replicas": 3}, (3, 3)),
    ],
)
def test_replication_follows_the_cluster_size_unless_set(
    brokers: int, values: dict[str, int], expected: tuple[int, int]
) -> None:
    assert replication(Settings(**values), brokers) == expected  # type: ignore[arg-type]


def test_more_in_sync_replicas_than_replicas_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="VELOURCITY_MIN_INSYNC_REPLICAS=2"):
        replication(Settings(min_insync_replicas=2), 1)


def test_no_broker_is_one_line_within_the_timeout() -> None:
    with socket.socket() as unused:  # a port nobody listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(KafkaConnectionError) as caught:
        check_connection(Settings(kafka_bootstrap=f"127.0.0.1:{port}"), timeout=2)
    assert time.monotonic() - started < 5
    assert str(caught.value) == (
        f"Kafka broker unreachable at 127.0.0.1:{port} within 2s (PLAINTEXT): "
        "check VELOURCITY_KAFKA_BOOTSTRAP"
    )
