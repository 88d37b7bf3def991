"""The app factory: one Faust App per worker process, built from a Settings object.

`aegis worker` calls :func:`create_app`. `faust -A aegis_app.worker.app worker` also goes
through it: the module's ``app`` attribute is built on first access (settings from the
AEGIS_* variables), so importing this module builds nothing.
"""

from __future__ import annotations

import faust
from faust.types.auth import CredentialsT

from aegis_app.core.settings import Settings
from aegis_app.kafka import faust_compat
from aegis_app.kafka.clients import KafkaConnection
from aegis_app.kafka.faust_ext import AegisApp
from aegis_app.worker.stopping import AegisWorker
from agents import pipeline as stream_pipeline
from agents.pipeline import Pipeline


def broker_credentials(connection: KafkaConnection) -> CredentialsT | None:
    """Faust's ``broker_credentials`` for `connection`: its TLS context and SASL login, from
    the same KafkaConnection.client_kwargs() as every other Aegis client (Faust's aiokafka
    driver hands them to each consumer and producer it builds); None for plaintext."""
    kwargs = connection.client_kwargs()
    protocol = kwargs.get("security_protocol", "PLAINTEXT")
    if protocol == "SSL":
        return faust.SSLCredentials(kwargs["ssl_context"])
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        # Faust picks SASL_SSL when given a TLS context, SASL_PLAINTEXT without one.
        return faust.SASLCredentials(
            username=kwargs["sasl_plain_username"],
            password=kwargs["sasl_plain_password"],
            mechanism=kwargs["sasl_mechanism"],
            ssl_context=kwargs.get("ssl_context"),
        )
    return None


# Short enough that a dead worker's cards are decided again within ~7 s of its death
# (BENCHMARKS.md "Failover"), long enough to ride out a busy second.
FAST_SESSION_TIMEOUT_S = 4.0


def session_timeout(
    settings: Settings, broker_min_s: float | None = None, broker_max_s: float | None = None
) -> float:
    """The consumer-group session timeout a worker asks for, in seconds.

    AEGIS_SESSION_TIMEOUT_S when set: ValueError naming it and the broker's setting if the
    broker would refuse it (Kafka fails the join with only "InvalidSessionTimeoutError").
    Not set: FAST_SESSION_TIMEOUT_S, raised to the broker's minimum when that is longer
    (Apache Kafka's group.min.session.timeout.ms is 6 s by default).
    """
    given = settings.session_timeout_s
    if given is None:
        return max(FAST_SESSION_TIMEOUT_S, broker_min_s or 0.0)
    if broker_min_s is not None and given < broker_min_s:
        raise ValueError(
            f"the broker accepts no session timeout below {broker_min_s:g} s "
            f"(its group.min.session.timeout.ms): AEGIS_SESSION_TIMEOUT_S={given:g} is refused;"
            " raise it, or lower the broker's setting"
        )
    if broker_max_s is not None and given > broker_max_s:
        raise ValueError(
            f"the broker accepts no session timeout above {broker_max_s:g} s "
            f"(its group.max.session.timeout.ms): AEGIS_SESSION_TIMEOUT_S={given:g} is refused"
        )
    return given


def group_timeouts(settings: Settings) -> dict[str, float]:
    """Faust's consumer-group timeouts from the settings; ValueError if they cannot work
    (a heartbeat interval not below the session timeout: every member would be dropped)."""
    session, heartbeat = session_timeout(settings), settings.heartbeat_interval_s
    if not 0 < heartbeat < session:
        raise ValueError(
            f"heartbeat interval ({heartbeat:g} s, AEGIS_HEARTBEAT_INTERVAL_S) must be above 0"
            f" and below the session timeout ({session:g} s, AEGIS_SESSION_TIMEOUT_S)"
        )
    if settings.rebalance_timeout_s <= 0:
        raise ValueError("the rebalance timeout (AEGIS_REBALANCE_TIMEOUT_S) must be above 0")
    return {
        "broker_session_timeout": session,
        "broker_heartbeat_interval": heartbeat,
        "broker_rebalance_timeout": settings.rebalance_timeout_s,
    }


def build(settings: Settings) -> tuple[faust.App, Pipeline]:
    """The worker's Faust App with every topic, table, agent and page registered."""
    connection = KafkaConnection.from_settings(settings)  # a bad TLS/SASL setting fails here
    # AegisApp: Faust's App whose consumer carries Aegis's delivery fixes (changelog end
    # offsets, stale acks, the seek gate), the fetch wait and the fetch pacing
    # (aegis_app/kafka/faust_ext.py); it checks the private names it relies on first.
    app = AegisApp(
        settings.app_id,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        fetch_interval_ms=settings.fetch_interval_ms,
        broker=settings.kafka_broker,
        broker_credentials=broker_credentials(connection),
        # rocksdict-backed RocksDB: one directory per worker process (data_dir).
        store="rocksdb://",
        datadir=str(settings.data_dir),
        topic_partitions=settings.partitions,
        topic_allow_declare=True,
        value_serializer="json",
        key_serializer="raw",
        consumer_auto_offset_reset="earliest",
        # How soon a dead worker's partitions move (docs/OPERATIONS.md "Failover").
        **group_timeouts(settings),
        table_standby_replicas=1,
        # table_route must hash a key as the input topics do (see faust_compat).
        Router=faust_compat.SourceKeyRouter,
        web_enabled=settings.web_port > 0,
        web_port=settings.web_port or 6066,
        web_bind="127.0.0.1",
        web_host="127.0.0.1",
        web_in_thread=False,
        producer_linger_ms=settings.producer_linger_ms,
        # Bounded per-partition fetches keep the card partitions close in event time when
        # catching up on a backlog: terminal features are exact while that skew stays
        # below the label delay (docs/FEATURES.md).
        consumer_max_fetch_size=settings.fetch_max_bytes,
        stream_buffer_maxsize=1024,
        # Stops within a deadline even when the broker is gone (aegis_app/worker/stopping.py).
        Worker=AegisWorker,
    )
    return app, stream_pipeline.register(app, settings)


def create_app(settings: Settings) -> faust.App:
    return build(settings)[0]


_from_env: faust.App | None = None


def __getattr__(name: str) -> faust.App:
    """``aegis_app.worker.app.app`` for `faust -A`: built on first access, from AEGIS_*."""
    global _from_env
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _from_env is None:
        from aegis_app.runtime.process import tune_process

        settings = Settings.from_env()
        _from_env = create_app(settings)
        tune_process(settings, scoring=True)
    return _from_env
