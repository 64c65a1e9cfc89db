"""One settings object for every process, read from ``VELOURCITY_*`` environment variables.

Nothing reads the environment at import time: call :func:`load_settings` (or build
``Settings(...)`` in tests) and pass the object down.
"""

from __future__ import annotations

import ipaddress
import json
import os
from typing import Annotated, Literal, Self

from pydantic import Field, HttpUrl, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from pipeline.exceptions import ConfigurationError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


_LOG_LEVELS = ("debug", "info", "warn", "error")
_LOG_LEVEL_ALIASES = {"warning": "warn"}  # Python's logging name


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VELOURCITY_", frozen=True, extra="ignore")

    # Kafka
    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    """How every client of every process connects (:mod:`pipeline.kafka.connection`)."""
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_ca_location: str | None = None
    """PEM file of the certificate authorities trusted for the brokers (None: the system's)."""
    kafka_ssl_certificate_location: str | None = None
    """PEM client certificate, for mutual TLS (with ``kafka_ssl_key_location``)."""
    kafka_ssl_key_location: str | None = None
    kafka_ssl_check_hostname: bool = True
    """Whether a broker's certificate must name the host connected to."""
    kafka_extra: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict, repr=False)
    """Any other librdkafka property for every confluent-kafka client: JSON
    (``{"client.rack": "a"}``) or ``key=value,key=value``."""
    topic_prefix: str = ""
    """Prepended to every topic name and every consumer group / app id."""
    orders_topic: str = "velourcity.orders"
    payments_topic: str = "velourcity.payments"
    domain_partitions: int = Field(default=6, ge=1)
    delivery_partitions: int = Field(default=12, ge=1)
    internal_partitions: int = Field(default=3, ge=1)
    replication_factor: int | None = Field(default=None, ge=1)
    """Replicas of each topic the pipeline creates; None: 3 on a cluster of three or more
    brokers, else 1 (:func:`pipeline.topics.replication`)."""
    min_insync_replicas: int | None = Field(default=None, ge=1)
    """``min.insync.replicas`` of each topic created (with ``acks=all``, how many replicas
    must have a record before it is acknowledged); None: 2 with three replicas or more, else
    1."""

    # Delivery
    http_timeout: float = Field(default=15.0, gt=0)
    http_connect_timeout: float = Field(default=5.0, gt=0)
    http_max_connections: int = Field(default=200, ge=1)
    http_client: Literal["aiohttp", "httpx"] = "aiohttp"
    """The sender's connection pool, both behind the SSRF guard: aiohttp's, under httpx's
    interface (about twice the throughput: encode/httpx#3215), or httpx's own."""
    sender_concurrency: int = Field(default=200, ge=1)
    """Requests one worker makes at once, all endpoints together."""
    endpoint_max_in_flight: int = Field(default=10, ge=1)
    """Requests one endpoint may have in flight from one worker."""
    endpoint_max_queued: int = Field(default=100, ge=0)
    """An endpoint's deliveries a worker holds waiting for its turn; past that they are
    deferred to the first retry tier (no attempt used)."""
    breaker_failures: int = Field(default=10, ge=1)
    """Failed attempts in a row that open an endpoint's circuit breaker."""
    breaker_cooldown: float = Field(default=30.0, gt=0)
    """Seconds an open breaker waits before it lets one probe through."""
    auto_disable_days: float = Field(default=5.0, gt=0)
    """An endpoint failing this long without one success is disabled (``endpoint.disabled``)."""
    allowed_networks: Annotated[list[IPNetwork], NoDecode] = Field(default_factory=list)
    """CIDRs exempt from the SSRF guard, where plain http is accepted too (dev and tests)."""
    require_https: bool = True
    retry_schedule: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0]
    )
    """Delays in seconds before each retry; attempts = len(retry_schedule) + 1."""

    commit_interval: float = Field(default=0.1, gt=0)
    """Least seconds between offset commits (the sender commits as soon as records finish,
    the fan-out on this timer): after a crash, about this much work repeats."""

    session_timeout: float = Field(default=10.0, ge=6)
    """Seconds before the group gives a silent (crashed) worker's partitions to the others."""

    duplicate_window: float = Field(default=120.0, ge=0)
    """Seconds the sender remembers the deliveries the fan-out wrote: one the fan-out writes
    again within it (after a crash or rebalance) is not sent again. 0 turns that off."""

    history_retention_days: float = Field(default=30.0, gt=0)
    """How long delivery history is kept and shown: the attempts and deliveries topics' retention,
    and the delivery log's day partitions in PostgreSQL (older ones are dropped whole)."""

    # PostgreSQL
    database_url: str = "postgresql://velourcity:velourcity@127.0.0.1:5433/velourcity"
    """The delivery log's and the control plane's database (``make db`` starts this one)."""
    database_pool_size: int = Field(default=10, ge=1)
    """Most connections one API process holds."""
    database_timeout: float = Field(default=3.0, gt=0)
    """Seconds to connect, or to wait for a pooled connection, before the database counts as
    unavailable (the API then answers 503)."""

    # Processes
    fanout_fetch_wait_ms: int = Field(default=5, ge=1, le=60_000)
    """Longest the fan-out's fetch waits for 64 KiB of events before the broker answers with
    what it has: longer, an idle worker fetches less often (a fetch every 5 ms kept an idle
    worker at 12 % of a core, against 4 % with Faust's 1.5 s) but an event may wait that long
    at a low rate; shorter, the reverse. Under load the 64 KiB come first either way."""
    worker_role: Literal["all", "fanout", "sender"] = "all"
    """What ``velourcity worker`` runs: the fan-out and the sender (``all``), or one of them
    (to measure or scale them apart; each is its own consumer group either way)."""
    otlp_endpoint: str | None = None
    """OpenTelemetry collector (OTLP/HTTP, e.g. ``http://collector:4318``): spans from publish
    to each attempt are exported there (:mod:`pipeline.tracing`). None: tracing off."""
    trace_sample_ratio: float = Field(default=1.0, ge=0, le=1)
    """Share of traces recorded when tracing is on, decided where a trace starts (the
    publisher) and followed downstream: 0.01 keeps one event in a hundred, at a fraction of
    the cost of recording all (see Tracing in the README)."""
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    """The worker's event loop: uvloop (libuv; 12-16 % less CPU a delivery than asyncio's
    own loop in the bench's sender-alone scenario) or Python's ``asyncio`` loop."""
    log_level: Literal["debug", "info", "warn", "error"] = "info"
    """Any case; Python's ``warning`` is read as ``warn``."""
    log_format: Literal["json", "console"] = "json"
    """``json``: one JSON object a line (for log pipelines); ``console``: for people."""
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=9108, ge=0, le=65535)
    """Where a worker serves Prometheus ``/metrics``; 0 turns it off."""
    admin_token: SecretStr | None = None
    public_url: HttpUrl | None = None
    """The dashboard's address as partners reach it (e.g. ``https://hooks.velourcity.com``):
    where portal links point. None: the address the request for the link came to."""

    @field_validator("kafka_extra", mode="before")
    @classmethod
    def _parse_extra(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("{"):
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not valid JSON ({exc.msg})") from None
            if not isinstance(parsed, dict):
                raise ValueError("takes a JSON object or key=value,key=value")
            return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in parsed.items()}
        pairs = {}
        for item in text.split(","):
            if not item.strip():
                continue
            key, sep, val = item.partition("=")
            if not sep or not key.strip():
                raise ValueError("takes a JSON object or key=value,key=value")
            pairs[key.strip()] = val.strip()
        return pairs

    @model_validator(mode="after")
    def _check_kafka_security(self) -> Self:
        protocol = self.kafka_security_protocol
        sasl = protocol.startswith("SASL_")
        if sasl and not (self.kafka_sasl_mechanism and self.kafka_sasl_username):
            raise ValueError(
                f"VELOURCITY_KAFKA_SECURITY_PROTOCOL={protocol} needs "
                "VELOURCITY_KAFKA_SASL_MECHANISM and VELOURCITY_KAFKA_SASL_USERNAME (and _PASSWORD)"
            )
        if sasl and self.kafka_sasl_password is None:
            raise ValueError(
                f"VELOURCITY_KAFKA_SECURITY_PROTOCOL={protocol} needs "
                "VELOURCITY_KAFKA_SASL_PASSWORD"
            )
        if not sasl and (self.kafka_sasl_mechanism or self.kafka_sasl_username):
            raise ValueError(
                "VELOURCITY_KAFKA_SASL_* are set but VELOURCITY_KAFKA_SECURITY_PROTOCOL is "
                f"{protocol}: use SASL_SSL (or SASL_PLAINTEXT)"
            )
        tls_files = {
            "VELOURCITY_KAFKA_SSL_CA_LOCATION": self.kafka_ssl_ca_location,
            "VELOURCITY_KAFKA_SSL_CERTIFICATE_LOCATION": self.kafka_ssl_certificate_location,
            "VELOURCITY_KAFKA_SSL_KEY_LOCATION": self.kafka_ssl_key_location,
        }
        given = [name for name, path in tls_files.items() if path]
        if given and not protocol.endswith("SSL"):
            raise ValueError(
                f"{given[0]} is set but VELOURCITY_KAFKA_SECURITY_PROTOCOL is {protocol}: "
                "use SSL or SASL_SSL"
            )
        if bool(self.kafka_ssl_certificate_location) != bool(self.kafka_ssl_key_location):
            raise ValueError(
                "mutual TLS needs both VELOURCITY_KAFKA_SSL_CERTIFICATE_LOCATION and "
                "VELOURCITY_KAFKA_SSL_KEY_LOCATION"
            )
        for name in given:
            if not os.path.isfile(str(tls_files[name])):
                raise ValueError(f"{name}={tls_files[name]}: no such file")
        return self

    @field_validator("allowed_networks", mode="before")
    @classmethod
    def _parse_networks(cls, value: object) -> object:
        items = _split_csv(value)
        if isinstance(items, list):
            try:
                return [ipaddress.ip_network(str(item), strict=False) for item in items]
            except ValueError as exc:
                raise ValueError(f"allowed_networks takes comma-separated CIDRs: {exc}") from exc
        return items

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018  (raises on a port that is not a number)
        except ValueError as exc:
            raise ValueError(f"not a URL ({exc})") from exc
        if parts.scheme not in ("postgresql", "postgres") or not parts.hostname:
            raise ValueError("accepted: postgresql://user:password@host:port/database")
        if not parts.path.strip("/"):
            raise ValueError("name the database: postgresql://user:password@host:port/database")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _parse_log_level(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        level = value.strip().lower()
        level = _LOG_LEVEL_ALIASES.get(level, level)
        if level not in _LOG_LEVELS:
            raise ValueError("accepted: debug, info, warn (or warning), error, in any case")
        return level

    @field_validator("retry_schedule", mode="before")
    @classmethod
    def _parse_schedule(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("retry_schedule")
    @classmethod
    def _check_schedule(cls, value: list[float]) -> list[float]:
        if any(delay <= 0 for delay in value):
            raise ValueError("retry_schedule takes positive delays in seconds, e.g. 5,300,1800")
        return value

    def topic(self, name: str) -> str:
        """The full name of a pipeline topic, with the prefix."""
        return f"{self.topic_prefix}{name}"

    def group(self, name: str) -> str:
        """The full id of a consumer group or app, with the prefix."""
        return f"{self.topic_prefix}{name}"

    def as_environment(self) -> dict[str, str]:
        """The environment (this process's, plus ``VELOURCITY_*``) that gives a child process
        these settings: the tests, the demo, the benchmark and the chaos suite start workers
        with it."""
        env = dict(os.environ)
        for name, value in self.model_dump().items():
            if value is None:
                continue
            if isinstance(value, list):
                value = ",".join(str(v) for v in value)
            elif isinstance(value, dict):
                value = json.dumps(value)
            elif isinstance(value, SecretStr):
                value = value.get_secret_value()
            env[f"VELOURCITY_{name.upper()}"] = str(value)
        return env


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment (and ``overrides``, which win).

    A bad value raises :class:`ConfigurationError` with one line per the setting's environment
    name, the value and what is accepted (the CLI prints it, no traceback).
    """
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigurationError(describe_settings_error(exc)) from exc


# a database URL holds a password; the Kafka pass-through may hold one
_HIDDEN = ("token", "secret", "password", "database_url", "extra")


def describe_settings_error(exc: ValidationError) -> str:
    """``VELOURCITY_LOG_LEVEL='loud': accepted: ...``, one clause per bad setting, one line."""
    parts = []
    for error in exc.errors():
        if not error["loc"]:  # a check of several settings: its message names them
            parts.append(str(error["msg"]).removeprefix("Value error, "))
            continue
        field = str(error["loc"][0])
        name = f"VELOURCITY_{field.upper()}"
        value = error.get("input")
        shown = "<hidden>" if any(h in field for h in _HIDDEN) else repr(value)[:80]
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "literal_error":
            message = f"accepted: {error.get('ctx', {}).get('expected', '')}"
        parts.append(f"{name}={shown}: {message}")
    return "invalid setting " + "; ".join(parts)
