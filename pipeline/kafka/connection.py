"""How every Kafka client of the pipeline connects: one configuration, three client libraries.

The settings (``VELOURCITY_KAFKA_BOOTSTRAP``, ``_SECURITY_PROTOCOL``, ``_SASL_*``, ``_SSL_*``,
``_EXTRA``) are mapped here, and only here, to

- librdkafka's property names, for confluent-kafka's producers, consumers and admin clients
  (:func:`librdkafka_config`; :mod:`.config` builds the pipeline's producers and consumers on it);
- aiokafka's keyword arguments (:func:`aiokafka_kwargs`): the sender's readers and admin client;
- Faust's ``broker`` and ``broker_credentials`` (:func:`faust_broker`): the fan-out app.

:func:`check_connection` is what each long-running command calls first: wrong credentials, an
untrusted certificate or an unreachable broker become one :class:`KafkaConnectionError` line
within seconds instead of a hang. The SASL password is read from its ``SecretStr`` only into
the client configurations, never into a message.
"""

from __future__ import annotations

import re
import ssl
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from pipeline.exceptions import KafkaConnectionError
from pipeline.settings import Settings

__all__ = [
    "aiokafka_kwargs",
    "check_connection",
    "faust_broker",
    "librdkafka_config",
    "ssl_context",
]


def librdkafka_config(settings: Settings, **properties: Any) -> dict[str, Any]:
    """The connection properties (bootstrap, TLS, SASL, ``VELOURCITY_KAFKA_EXTRA``), then the
    client's own ``properties``, which win: ``acks`` or a group id stay the pipeline's."""
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap,
        "security.protocol": settings.kafka_security_protocol.lower(),
    }
    if settings.kafka_security_protocol.startswith("SASL_"):
        assert settings.kafka_sasl_password is not None  # checked when the settings load
        config |= {
            "sasl.mechanism": settings.kafka_sasl_mechanism,
            "sasl.username": settings.kafka_sasl_username,
            "sasl.password": settings.kafka_sasl_password.get_secret_value(),
        }
    if settings.kafka_security_protocol.endswith("SSL"):
        config["ssl.endpoint.identification.algorithm"] = (
            "https" if settings.kafka_ssl_check_hostname else "none"
        )
        for name, path in (
            ("ssl.ca.location", settings.kafka_ssl_ca_location),
            ("ssl.certificate.location", settings.kafka_ssl_certificate_location),
            ("ssl.key.location", settings.kafka_ssl_key_location),
        ):
            if path:
                config[name] = path
    return config | settings.kafka_extra | properties


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of the Python clients (aiokafka, Faust), None without TLS."""
    if not settings.kafka_security_protocol.endswith("SSL"):
        return None
    context = ssl.create_default_context(cafile=settings.kafka_ssl_ca_location)
    if settings.kafka_ssl_certificate_location:
        context.load_cert_chain(
            settings.kafka_ssl_certificate_location, settings.kafka_ssl_key_location
        )
    context.check_hostname = settings.kafka_ssl_check_hostname
    return context


def aiokafka_kwargs(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for any aiokafka client (``AIOKafkaConsumer(**aiokafka_kwargs(s))``)."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "security_protocol": settings.kafka_security_protocol,
    }
    if (context := ssl_context(settings)) is not None:
        kwargs["ssl_context"] = context
    if settings.kafka_security_protocol.startswith("SASL_"):
        assert settings.kafka_sasl_password is not None
        kwargs |= {
            "sasl_mechanism": settings.kafka_sasl_mechanism,
            "sasl_plain_username": settings.kafka_sasl_username,
            "sasl_plain_password": settings.kafka_sasl_password.get_secret_value(),
        }
    return kwargs


def faust_broker(settings: Settings) -> dict[str, Any]:
    """``broker`` and ``broker_credentials`` for ``faust.App(...)``."""
    import faust  # heavy: only the worker needs it

    brokers = [f"kafka://{host.strip()}" for host in settings.kafka_bootstrap.split(",")]
    credentials: Any = None
    context = ssl_context(settings)
    if settings.kafka_security_protocol.startswith("SASL_"):
        assert settings.kafka_sasl_password is not None
        credentials = faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password.get_secret_value(),
            mechanism=settings.kafka_sasl_mechanism,
            ssl_context=context,
        )
    elif context is not None:
        credentials = faust.SSLCredentials(context)
    return {"broker": brokers, "broker_credentials": credentials}


# The connection check -----------------------------------------------------------------------

_AUTH_CODES = {KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED}
_TLS_CODES = {KafkaError._SSL}
_CLIENT_CERTIFICATE_REFUSED = (
    "alert bad certificate",
    "alert certificate required",
    "alert unknown ca",
)
"""OpenSSL's words for a broker's TLS alert about our certificate (mutual TLS)."""


def check_connection(settings: Settings, *, timeout: float = 10.0) -> int:
    """How many brokers the cluster has, once one of them answered a metadata request with
    these settings; else :class:`KafkaConnectionError` (one line: authentication failed, the
    certificate is not trusted, or no broker answered) within about ``timeout`` seconds."""
    errors: list[KafkaError] = []
    admin = AdminClient(
        librdkafka_config(
            settings,
            error_cb=errors.append,
            log_level=0,  # the reason reaches the caller as one line, not librdkafka's log
            **{"socket.connection.setup.timeout.ms": int(timeout * 1000)},
        )
    )
    deadline = time.monotonic() + timeout
    while True:
        try:
            return len(admin.list_topics(timeout=min(1.0, timeout)).brokers)
        except KafkaException as exc:
            errors.append(exc.args[0])
        admin.poll(0)  # serves error_cb
        if (problem := _diagnose(settings, errors)) is not None:
            raise KafkaConnectionError(problem)
        if time.monotonic() >= deadline:
            raise KafkaConnectionError(
                f"Kafka broker unreachable at {settings.kafka_bootstrap} within {timeout:g}s "
                f"({settings.kafka_security_protocol}): check VELOURCITY_KAFKA_BOOTSTRAP"
            )


def _diagnose(settings: Settings, errors: list[KafkaError]) -> str | None:
    where = f"Kafka at {settings.kafka_bootstrap}"
    for error in errors:
        text = error.str()
        if error.code() in _AUTH_CODES or "SASL authentication" in text:
            return (
                f"{where}: authentication failed for user {settings.kafka_sasl_username!r} "
                f"({settings.kafka_sasl_mechanism}): check VELOURCITY_KAFKA_SASL_USERNAME and "
                "VELOURCITY_KAFKA_SASL_PASSWORD"
            )
        if any(alert in text for alert in _CLIENT_CERTIFICATE_REFUSED):
            return (
                f"{where}: the broker refused the client certificate (none given, or not "
                "signed by a CA it trusts): check VELOURCITY_KAFKA_SSL_CERTIFICATE_LOCATION "
                "and VELOURCITY_KAFKA_SSL_KEY_LOCATION"
            )
        if error.code() in _TLS_CODES or "SSL handshake failed" in text:
            reason = "certificate not trusted" if "verify" in text else "TLS handshake failed"
            return (
                f"{where}: {reason} ({_first_clause(text)}): check "
                "VELOURCITY_KAFKA_SSL_CA_LOCATION and VELOURCITY_KAFKA_SECURITY_PROTOCOL"
            )
    return None


def _first_clause(text: str) -> str:
    """OpenSSL's reason in librdkafka's message, e.g. ``certificate verify failed``."""
    reason = text.split("SSL handshake failed: ", 1)[-1]
    reason = re.sub(r"error:[0-9A-Fa-f]+:[\w ]+::", "", reason)
    return reason.split(":", 1)[0].strip().replace("\n", " ")[:120]
