"""Every aiokafka client Aegis builds (producer, consumer, admin, low-level), from one place.

:class:`KafkaConnection` describes how to reach the cluster, derived from Settings
(:meth:`KafkaConnection.from_settings`); :meth:`KafkaConnection.client_kwargs` is the one
place the keyword arguments that say so are produced: the bootstrap servers, and TLS and
SASL (security protocol, mechanism, user, password, TLS context; aegis_app/kafka/
security.py). The factories below take a connection (or a broker URL, read as a plaintext
connection with nothing but its servers) plus the options of the one client a call site
needs (linger, acks, group id...), and refuse connection options given any other way, so
no client can connect differently from the rest. The Faust worker gets the same TLS and
SASL settings from the same connection (aegis_app/worker/app.py).

A client of a TLS or SASL connection whose start fails because the cluster refused its
login or the client does not trust the cluster's certificate raises
:class:`~aegis_app.kafka.security.KafkaSecurityError` naming the cause, not aiokafka's bare
"Unable to bootstrap"; plaintext clients are aiokafka's own behaviour, unchanged. The
password never prints: it is a :class:`~aegis_app.kafka.security.Secret`, and the
connection's repr and str leave it out.

The connection also carries the fetch interval of the broker it names (Settings'
``fetch_interval_ms``, aegis_app/kafka/fetch_pacing.py): a consumer built with
``paced=True`` spaces its fetches to one broker by it; no other consumer is touched.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaClient, AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError

from aegis_app.kafka import security
from aegis_app.kafka.fetch_pacing import PacedConsumer
from aegis_app.kafka.security import KafkaSettingsError, Secret, setting_names

if TYPE_CHECKING:
    from aegis_app.core.settings import Settings

DEFAULT_PORT = 9092
# aiokafka keyword arguments that say how to connect: only client_kwargs() may set them.
CONNECTION_OPTIONS = frozenset(
    {
        "bootstrap_servers",
        "security_protocol",
        "ssl_context",
        "sasl_mechanism",
        "sasl_plain_username",
        "sasl_plain_password",
        "sasl_kerberos_service_name",
        "sasl_kerberos_domain_name",
        "sasl_oauth_token_provider",
    }
)


def _host_port(text: str, url: str) -> str:
    server = text.strip().split("://", 1)[-1].rstrip("/")
    if "@" in server:  # kafka://user:password@host: it would be printed with the URL
        raise ValueError(
            f"the Kafka broker URL must not carry credentials (user@host); give them with "
            f"{setting_names('kafka_sasl_username')} and {setting_names('kafka_sasl_password')}"
        )
    host, colon, port = server.rpartition(":")
    if not colon:
        host, port = server, str(DEFAULT_PORT)
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(
            f"bad Kafka broker address {text.strip()!r} in {url!r}: expected host:port "
            f"(e.g. kafka://127.0.0.1:9092; several separated by ';' or ',')"
        )
    return f"{host}:{int(port)}"


def _text(value: object) -> str | None:
    """A setting's text, None when not given (an empty variable counts as not given)."""
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _read_password_file(path: str) -> Secret:
    names = setting_names("kafka_sasl_password_file")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise KafkaSettingsError(f"{names}: cannot read {path} ({exc.strerror})") from None
    password = text.rstrip("\r\n")  # a secret file usually ends with a newline
    if not password:
        raise KafkaSettingsError(f"{names}: {path} is empty")
    return Secret(password)


@dataclass(frozen=True)
class KafkaConnection:
    """How every Aegis Kafka client reaches the cluster.

    ``bootstrap_servers``: ``host:port`` of each bootstrap broker. ``fetch_interval_ms``:
    least time between two fetches of a paced consumer to one broker (0: not spaced).
    ``security_protocol``: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL; ``sasl_*`` the login
    (mechanism PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512); ``ssl_*`` PEM files: the CA that
    signed the brokers' certificates (none: the system's CAs), and a client certificate and
    key for mutual TLS. Checked when built: a bad value raises
    :class:`~aegis_app.kafka.security.KafkaSettingsError` naming the setting.
    """

    bootstrap_servers: tuple[str, ...]
    fetch_interval_ms: float = 0.0
    security_protocol: str = security.PLAINTEXT
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: Secret | None = field(default=None, repr=False)
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.bootstrap_servers, str) or not self.bootstrap_servers:
            raise ValueError(
                f"bootstrap_servers must be a non-empty tuple of host:port, "
                f"got {self.bootstrap_servers!r}"
            )
        for server in self.bootstrap_servers:
            _host_port(server, server)
        interval = self.fetch_interval_ms
        if isinstance(interval, bool) or not isinstance(interval, int | float) or interval < 0:
            raise ValueError(f"fetch_interval_ms must be a number >= 0, got {interval!r}")
        if self.sasl_password is not None and not isinstance(self.sasl_password, Secret):
            object.__setattr__(self, "sasl_password", Secret(self.sasl_password))
        self._check_security()

    def _check_security(self) -> None:
        protocol = self.security_protocol
        if protocol not in security.PROTOCOLS:
            raise KafkaSettingsError(
                f"{setting_names('kafka_security_protocol')}: unknown security protocol "
                f"{protocol!r}; choose one of {', '.join(security.PROTOCOLS)}"
            )
        if self.sasl:
            if self.sasl_mechanism not in security.MECHANISMS:
                raise KafkaSettingsError(
                    f"{setting_names('kafka_sasl_mechanism')}: unknown SASL mechanism "
                    f"{self.sasl_mechanism!r}; choose one of {', '.join(security.MECHANISMS)}"
                )
            if not self.sasl_username:
                raise KafkaSettingsError(
                    f"{setting_names('kafka_sasl_username')}: {protocol} needs a SASL user name"
                )
            if not self.sasl_password:
                raise KafkaSettingsError(
                    f"{setting_names('kafka_sasl_password')}: {protocol} needs the password "
                    f"of SASL user {self.sasl_username!r}"
                )
        if not self.tls:
            return
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                problem = "is not a file" if Path(path).exists() else "does not exist"
                raise KafkaSettingsError(f"{setting_names('kafka_' + name)}: {path} {problem}")
        if self.ssl_keyfile and not self.ssl_certfile:
            raise KafkaSettingsError(
                f"{setting_names('kafka_ssl_keyfile')}: a client key needs its certificate "
                f"({setting_names('kafka_ssl_certfile')})"
            )
        _ = self.ssl_context  # a file that is not PEM fails here, before any connection

    @classmethod
    def from_url(cls, url: str, *, fetch_interval_ms: float = 0.0) -> KafkaConnection:
        """From a broker URL as Aegis writes it: ``kafka://h1:9092;h2:9092``, or plain
        ``host:port`` (several separated by ',' or ';'); a missing port is 9092. Plaintext:
        TLS and SASL come from Settings (:meth:`from_settings`)."""
        if not isinstance(url, str) or not url.strip():
            raise ValueError(f"no Kafka broker URL given (got {url!r})")
        parts = [p for p in url.replace(",", ";").split(";") if p.strip()]
        return cls(tuple(_host_port(p, url) for p in parts), fetch_interval_ms)

    @classmethod
    def from_settings(cls, settings: Settings) -> KafkaConnection:
        """AEGIS_KAFKA_BROKER, AEGIS_FETCH_INTERVAL_MS and the TLS / SASL settings
        (AEGIS_KAFKA_SECURITY_PROTOCOL, AEGIS_KAFKA_SASL_*, AEGIS_KAFKA_SSL_*), as the
        Settings hold them. The password: AEGIS_KAFKA_SASL_PASSWORD if given, else the
        contents of AEGIS_KAFKA_SASL_PASSWORD_FILE (one trailing newline dropped)."""
        servers = cls.from_url(settings.kafka_broker).bootstrap_servers
        protocol = (_text(settings.kafka_security_protocol) or security.PLAINTEXT).upper()
        sasl = protocol in security.SASL_PROTOCOLS
        password: Secret | None = None
        if sasl:
            given = settings.kafka_sasl_password
            if given:
                password = Secret(given)
            elif _text(settings.kafka_sasl_password_file):
                password = _read_password_file(str(settings.kafka_sasl_password_file))
        mechanism = _text(settings.kafka_sasl_mechanism) or security.DEFAULT_MECHANISM
        return cls(
            servers,
            settings.fetch_interval_ms,
            security_protocol=protocol,
            sasl_mechanism=mechanism.upper() if sasl else None,
            sasl_username=_text(settings.kafka_sasl_username) if sasl else None,
            sasl_password=password,
            ssl_cafile=_text(settings.kafka_ssl_cafile),
            ssl_certfile=_text(settings.kafka_ssl_certfile),
            ssl_keyfile=_text(settings.kafka_ssl_keyfile),
        )

    @property
    def tls(self) -> bool:
        return self.security_protocol in security.TLS_PROTOCOLS

    @property
    def sasl(self) -> bool:
        return self.security_protocol in security.SASL_PROTOCOLS

    @property
    def first_server(self) -> tuple[str, int]:
        """(host, port) of the first bootstrap broker (a quick reachability probe)."""
        host, _, port = self.bootstrap_servers[0].rpartition(":")
        return host, int(port)

    @cached_property
    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of every client of this connection (None without TLS)."""
        if not self.tls:
            return None
        return security.ssl_context(self.ssl_cafile, self.ssl_certfile, self.ssl_keyfile)

    def client_kwargs(self) -> dict[str, Any]:
        """The keyword arguments every aiokafka client gets to connect."""
        kwargs: dict[str, Any] = {"bootstrap_servers": list(self.bootstrap_servers)}
        if self.security_protocol == security.PLAINTEXT:
            return kwargs
        kwargs["security_protocol"] = self.security_protocol
        if self.tls:
            kwargs["ssl_context"] = self.ssl_context
        if self.sasl:
            security.redact_sasl_in_logs()  # aiokafka's DEBUG lines would show PLAIN's password
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.sasl_username
            kwargs["sasl_plain_password"] = self.sasl_password
        return kwargs

    def security_summary(self) -> str:
        """' (SASL_SSL, SCRAM-SHA-512 as alice, CA /etc/kafka/ca.pem)', '' for plaintext:
        how the servers are reached, for people (never the password)."""
        if self.security_protocol == security.PLAINTEXT:
            return ""
        details = [self.security_protocol]
        if self.sasl:
            details.append(f"{self.sasl_mechanism} as {self.sasl_username}")
        if self.tls:
            details.append(f"CA {self.ssl_cafile or 'system'}")
        return f" ({', '.join(details)})"

    def describe(self) -> str:
        """The servers and how they are reached, for people (never the password)."""
        return ",".join(self.bootstrap_servers) + self.security_summary()

    def __str__(self) -> str:
        return ",".join(self.bootstrap_servers)


Broker = KafkaConnection | str


def connection_of(broker: Broker) -> KafkaConnection:
    """`broker` itself, or a broker URL read as a connection (servers only, no pacing)."""
    if isinstance(broker, KafkaConnection):
        return broker
    return KafkaConnection.from_url(broker)


def _options(connection: KafkaConnection, options: dict[str, Any]) -> dict[str, Any]:
    clash = sorted(CONNECTION_OPTIONS & options.keys())
    if clash:
        raise TypeError(
            f"connection options {clash} come from KafkaConnection.client_kwargs() "
            f"(aegis_app/kafka/clients.py), not from a call site"
        )
    return {**connection.client_kwargs(), **options}


class _ExplainsRefusal:
    """Mixin for aiokafka clients: a start that fails because the cluster refused this
    client's TLS or SASL raises KafkaSecurityError naming the cause (see the module doc),
    and releases the client (nothing will retry it)."""

    aegis_connection: KafkaConnection

    async def _explained(
        self, start: Callable[[], Awaitable[None]], release: Callable[[], Awaitable[None]]
    ) -> None:
        try:
            await start()
        except Exception as exc:
            connection = self.aegis_connection
            refusal = security.explain(exc, connection)
            if refusal is None and isinstance(exc, KafkaConnectionError):
                # aiokafka logged the cause and kept only "Unable to bootstrap": look again.
                refusal = await security.diagnose(connection)
            if refusal is None:
                raise
            with contextlib.suppress(Exception):
                await release()
            raise refusal from exc


class ExplainingProducer(_ExplainsRefusal, AIOKafkaProducer):
    async def start(self) -> None:
        await self._explained(super().start, self.stop)


class ExplainingConsumer(_ExplainsRefusal, AIOKafkaConsumer):
    async def start(self) -> None:
        await self._explained(super().start, self.stop)


class ExplainingPacedConsumer(_ExplainsRefusal, PacedConsumer):
    async def start(self) -> None:
        await self._explained(super().start, self.stop)


class ExplainingAdminClient(_ExplainsRefusal, AIOKafkaAdminClient):
    async def start(self) -> None:
        await self._explained(super().start, self.close)


class ExplainingClient(_ExplainsRefusal, AIOKafkaClient):
    async def bootstrap(self) -> None:
        await self._explained(super().bootstrap, self.close)


def _build(cls: type, broker: Broker, *args: Any, **options: Any) -> Any:
    connection = connection_of(broker)
    built = cls(*args, **_options(connection, options))
    built.aegis_connection = connection
    return built


def producer(broker: Broker, **options: Any) -> AIOKafkaProducer:
    """An AIOKafkaProducer (not started) with this call site's `options`."""
    return _build(ExplainingProducer, broker, **options)


def consumer(broker: Broker, *topics: str, paced: bool = False, **options: Any) -> AIOKafkaConsumer:
    """An AIOKafkaConsumer (not started) of `topics` with this call site's `options`.

    ``paced``: its fetches to one broker are spaced by the connection's fetch interval
    (a :class:`~aegis_app.kafka.fetch_pacing.PacedConsumer`, which also counts them)."""
    if paced:
        interval = connection_of(broker).fetch_interval_ms
        return _build(
            ExplainingPacedConsumer, broker, *topics, fetch_interval_ms=interval, **options
        )
    return _build(ExplainingConsumer, broker, *topics, **options)


def admin_client(broker: Broker, **options: Any) -> AIOKafkaAdminClient:
    """An AIOKafkaAdminClient (not started) with this call site's `options`."""
    return _build(ExplainingAdminClient, broker, **options)


def client(broker: Broker, **options: Any) -> AIOKafkaClient:
    """A low-level AIOKafkaClient (not bootstrapped) with this call site's `options`."""
    return _build(ExplainingClient, broker, **options)
