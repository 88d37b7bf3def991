"""Every aiokafka client Aegis builds (producer, consumer, admin, low-level), from one place.

:class:`KafkaConnection` describes how to reach the cluster, derived from Settings
(:meth:`KafkaConnection.from_settings`); :meth:`KafkaConnection.client_kwargs` is the one
place the keyword arguments that say so are produced (today the bootstrap servers; TLS and
SASL options belong there too). The factories below take a connection (or a broker URL,
read as a connection with nothing but its servers) plus the options of the one client a
call site needs (linger, acks, group id...), and refuse connection options given any other
way, so no client can connect differently from the rest.

The connection also carries the fetch interval of the broker it names (Settings'
``fetch_interval_ms``, aegis_app/kafka/fetch_pacing.py): a consumer built with
``paced=True`` spaces its fetches to one broker by it; no other consumer is touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaClient, AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from aegis_app.kafka.fetch_pacing import PacedConsumer

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
    host, colon, port = server.rpartition(":")
    if not colon:
        host, port = server, str(DEFAULT_PORT)
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(
            f"bad Kafka broker address {text.strip()!r} in {url!r}: expected host:port "
            f"(e.g. kafka://127.0.0.1:9092; several separated by ';' or ',')"
        )
    return f"{host}:{int(port)}"


@dataclass(frozen=True)
class KafkaConnection:
    """How every Aegis Kafka client reaches the cluster.

    ``bootstrap_servers``: ``host:port`` of each bootstrap broker. ``fetch_interval_ms``:
    least time between two fetches of a paced consumer to one broker (0: not spaced).
    """

    bootstrap_servers: tuple[str, ...]
    fetch_interval_ms: float = 0.0

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

    @classmethod
    def from_url(cls, url: str, *, fetch_interval_ms: float = 0.0) -> KafkaConnection:
        """From a broker URL as Aegis writes it: ``kafka://h1:9092;h2:9092``, or plain
        ``host:port`` (several separated by ',' or ';'); a missing port is 9092."""
        if not isinstance(url, str) or not url.strip():
            raise ValueError(f"no Kafka broker URL given (got {url!r})")
        parts = [p for p in url.replace(",", ";").split(";") if p.strip()]
        return cls(tuple(_host_port(p, url) for p in parts), fetch_interval_ms)

    @classmethod
    def from_settings(cls, settings: Settings) -> KafkaConnection:
        """AEGIS_KAFKA_BROKER and AEGIS_FETCH_INTERVAL_MS, as the Settings hold them."""
        return cls.from_url(settings.kafka_broker, fetch_interval_ms=settings.fetch_interval_ms)

    @property
    def first_server(self) -> tuple[str, int]:
        """(host, port) of the first bootstrap broker (a quick reachability probe)."""
        host, _, port = self.bootstrap_servers[0].rpartition(":")
        return host, int(port)

    def client_kwargs(self) -> dict[str, Any]:
        """The keyword arguments every aiokafka client gets to connect."""
        return {"bootstrap_servers": list(self.bootstrap_servers)}

    def __str__(self) -> str:
        return ",".join(self.bootstrap_servers)


Broker = KafkaConnection | str


def connection_of(broker: Broker) -> KafkaConnection:
    """`broker` itself, or a broker URL read as a connection (servers only, no pacing)."""
    if isinstance(broker, KafkaConnection):
        return broker
    return KafkaConnection.from_url(broker)


def _options(broker: Broker, options: dict[str, Any]) -> dict[str, Any]:
    clash = sorted(CONNECTION_OPTIONS & options.keys())
    if clash:
        raise TypeError(
            f"connection options {clash} come from KafkaConnection.client_kwargs() "
            f"(aegis_app/kafka/clients.py), not from a call site"
        )
    return {**connection_of(broker).client_kwargs(), **options}


def producer(broker: Broker, **options: Any) -> AIOKafkaProducer:
    """An AIOKafkaProducer (not started) with this call site's `options`."""
    return AIOKafkaProducer(**_options(broker, options))


def consumer(broker: Broker, *topics: str, paced: bool = False, **options: Any) -> AIOKafkaConsumer:
    """An AIOKafkaConsumer (not started) of `topics` with this call site's `options`.

    ``paced``: its fetches to one broker are spaced by the connection's fetch interval
    (a :class:`~aegis_app.kafka.fetch_pacing.PacedConsumer`, which also counts them)."""
    kwargs = _options(broker, options)
    if paced:
        interval = connection_of(broker).fetch_interval_ms
        return PacedConsumer(*topics, fetch_interval_ms=interval, **kwargs)
    return AIOKafkaConsumer(*topics, **kwargs)


def admin_client(broker: Broker, **options: Any) -> AIOKafkaAdminClient:
    """An AIOKafkaAdminClient (not started) with this call site's `options`."""
    return AIOKafkaAdminClient(**_options(broker, options))


def client(broker: Broker, **options: Any) -> AIOKafkaClient:
    """A low-level AIOKafkaClient (not bootstrapped) with this call site's `options`."""
    return AIOKafkaClient(**_options(broker, options))
