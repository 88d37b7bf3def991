"""Every Aegis setting in one place, read from AEGIS_* environment variables.

Command-line options override these; the defaults suit the demo on one machine.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aegis_app.core.config import Config

# Topic names are part of the public contract (see README): one topic per message kind.
TRANSACTIONS_TOPIC = "aegis.transactions"
DECISIONS_TOPIC = "aegis.decisions"
ALERTS_TOPIC = "aegis.alerts"
DEADLETTER_TOPIC = "aegis.deadletter"
LABELS_TOPIC = "aegis.labels"
MODEL_UPDATES_TOPIC = "aegis.model-updates"
# Analysts' rules and lists, compacted: the newest version of each (docs/DEVELOPING.md).
RULES_TOPIC = "aegis.rules"
# Internal repartition topics: the entity stage keyed by each non-card entity's key (the
# merchant, a category, ...), card stage keyed by card.
BY_ENTITY_TOPIC = "aegis.by-entity"
BY_CARD_TOPIC = "aegis.by-card"


def _env(name: str, default: str | None) -> str | None:
    return os.environ.get(f"AEGIS_{name}", default)


@dataclass(frozen=True)
class Settings:
    """Runtime settings. Each field's env variable is AEGIS_<FIELD NAME IN CAPITALS>."""

    # The schema and features config file (aegis_app/core/config.py); None: the default
    # preset, configs/handbook.toml.
    config: Path | None = None
    # Kafka bootstrap URL, e.g. kafka://127.0.0.1:9092 (several: kafka://h1:9092;h2:9092).
    kafka_broker: str = "kafka://127.0.0.1:9092"
    # TLS and SASL of every Kafka client (aegis_app/kafka/clients.py; README "Connecting to
    # your cluster"): PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
    kafka_security_protocol: str = "PLAINTEXT"
    # SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
    kafka_sasl_mechanism: str = "PLAIN"
    kafka_sasl_username: str | None = None
    # The password: given directly it wins over the file; never printed (repr hides it).
    kafka_sasl_password: str | None = field(default=None, repr=False)
    # A file holding the password (e.g. a Docker secret); one trailing newline is dropped.
    kafka_sasl_password_file: Path | None = None
    # PEM files: the CA that signed the brokers' certificates (default: the system's CAs),
    # and a client certificate and key for mutual TLS.
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    # Where a worker keeps its RocksDB tables (one directory per worker process).
    data_dir: Path = Path("var/data")
    # Model registry root: one sub-directory per model version, ACTIVE names the live one.
    model_dir: Path = Path("var/models")
    # SQLAlchemy URL of the result store; PostgreSQL in production.
    db_url: str = "sqlite:///var/aegis.db"
    # Port of the worker's Faust web view (table state, alerts, health).
    web_port: int = 6066
    # Port of the REST API and of the Streamlit analyst page.
    api_port: int = 8000
    dashboard_port: int = 8501
    # Partitions of every Aegis topic; must match across source and changelog topics.
    partitions: int = 4
    # Days between a transaction and the moment its label is known (Handbook: 7).
    label_delay_days: int = 7
    # Largest accepted encoded transaction, in bytes; larger records are dead-lettered.
    max_record_bytes: int = 16_384
    # Where the analyst page finds the REST API (default: this machine's api_port).
    api_url: str | None = None
    # Bearer token of the API's admin role (no default outside the demo); the role tokens
    # below add the narrower roles (README "Roles"), none of them has a default.
    api_token: str | None = None
    # Posts transactions (a payment gateway).
    api_service_token: str | None = field(default=None, repr=False)
    # Reads, labels alerts, drafts, backtests and shadows rules.
    api_analyst_token: str | None = field(default=None, repr=False)
    # Everything: activates and retires rules, sets lists (same as api_token).
    api_admin_token: str | None = field(default=None, repr=False)
    # Reads only (GET).
    api_read_token: str | None = field(default=None, repr=False)
    # Tokens of named people, "role:name:token" separated by commas (e.g.
    # "analyst:ana:s3cret,admin:cy:t0ken"): the audit log names who changed what.
    api_tokens: str | None = field(default=None, repr=False)
    # Most alerts a day a rule's backtest may add before its activation needs
    # "confirm": true (None: no budget).
    rule_alert_budget: float | None = None
    # Days of stored decisions a backtest covers unless asked otherwise (ending with the
    # newest stored day).
    rule_backtest_days: int = 7
    # GET endpoints of the API need no token (1/true/yes/on).
    api_open_reads: bool = False
    # The worker web view the API asks for features (default http://127.0.0.1:{web_port}).
    worker_url: str | None = None
    # Port `aegis broker` listens on.
    broker_port: int = 9092
    # Most transactions (or hops) a stage takes from one fetch and processes together
    # (aegis_app/kafka/batches.py); up to 4x this many wait while it works.
    stage_batch_size: int = 512
    # Micro-batch bounds for in-stream scoring: a batch closes at this size or age (it
    # takes whole fetches, so it may pass the size by the last fetch's transactions).
    score_batch_size: int = 512
    # 0: score what the entity stage handed over from one fetch at once (waiting for more
    # only adds latency now that stages take whole fetches: p50 at 200 tx/s 57 -> 45 ms).
    score_batch_ms: int = 0
    # Consumer-group liveness (docs/OPERATIONS.md "Failover"). A worker that sends no
    # heartbeat for session_timeout_s is dropped from the group and the others take its
    # partitions: this bounds how long a dead worker's cards go undecided (~7 s from a
    # SIGKILL to its partitions' next decisions, BENCHMARKS.md "Failover"). Longer rides
    # out longer pauses of a worker (GC, a starved CPU, a slow broker) without a rebalance.
    # Not set: 4 s, or the least the broker accepts (Apache Kafka's
    # group.min.session.timeout.ms, 6 s by default) when that is longer
    # (aegis_app/worker/app.py session_timeout). Set: used as given, refused at start when
    # the broker would refuse it.
    session_timeout_s: float | None = None
    # Seconds between two heartbeats; well below the session timeout (Kafka: below a third).
    heartbeat_interval_s: float = 1.0
    # How long a rebalance waits for every live member to rejoin (Kafka's
    # rebalance.timeout.ms): a worker still finishing its current events may take that long.
    rebalance_timeout_s: float = 60.0
    # Largest fetch per partition, in bytes. Smaller keeps card partitions close in event
    # time when catching up (terminal features stay exact while skew < label delay).
    fetch_max_bytes: int = 256 * 1024
    # How long a worker's fetch may wait for data (Faust's own 1.5 s adds latency per hop).
    # The embedded broker holds a fetch this long even when data arrives (Apache Kafka
    # answers at once), so it is the decision's fetch wait there: 20 ms, p99 23 ms at
    # 200 tx/s and 35 ms at 1,000 (50: 45 and 56; 10: more CPU; BENCHMARKS.md, 2026-12-05).
    fetch_max_wait_ms: int = 20
    # Least time between two fetches of one consumer from one broker (worker, sink, API).
    # The embedded broker's cost per fetch grows with the partition's stored batches
    # (aegis_app/kafka/fetch_pacing.py); 0 on Apache Kafka.
    fetch_interval_ms: int = 0
    # How long a worker's producer gathers records into one request: longer means fewer,
    # larger requests (less broker CPU) and that much more latency per hop.
    producer_linger_ms: int = 50
    # How long a thread may hold the GIL while another waits (CPython: 5 ms). Shorter
    # hand-offs between the event loop and the scoring thread (aegis_app/gil.py).
    thread_switch_interval_ms: float = 0.5
    # Allocations between two young-generation garbage collections in the worker, the API
    # and the sink (CPython: 700). Their records, dicts and futures mostly die young and are
    # freed by reference counting: fewer, larger passes cost less (aegis_app/runtime/heap.py).
    # 0 keeps CPython's.
    gc_young_threshold: int = 50_000
    # BLAS threads in the processes that score (worker, API); 0 keeps the library's own
    # (one per core). Scoring's matrix products are small (aegis_app/blas_threads.py).
    scoring_blas_threads: int = 1
    # RocksDB per partition database (Faust's defaults are 64 MB x 3 memtables and a 2 GB
    # block cache per database; a worker holds 2 tables x its active + standby partitions).
    # Small memtables flush often, so old versions of a card's value leave memory and the
    # write-ahead log soon and compaction drops them (docs/OPERATIONS.md, soak).
    rocksdb_write_buffer_mb: int = 4
    rocksdb_max_write_buffers: int = 2
    rocksdb_block_cache_mb: int = 16
    # Faust application id (consumer group and changelog topic prefix).
    app_id: str = "aegis"
    # Optional JSON file of decision rules (deny/allow lists, amount and velocity caps).
    rules_file: Path | None = None
    # `aegis ingest kinesis` (aegis_app/ingest): the stream, and where it is. Region and
    # endpoint fall back to the AWS chain (AWS_REGION, ~/.aws/config); the endpoint is only
    # for a local or private one (e.g. http://127.0.0.1:5000).
    kinesis_stream: str | None = None
    kinesis_region: str | None = None
    kinesis_endpoint_url: str | None = None
    # Where a shard without a checkpoint starts while the stream has none at all:
    # "trim_horizon" (its oldest record) or "latest" (records put from now on).
    kinesis_from: str = "trim_horizon"
    # Seconds between two GetRecords of a shard that had nothing new (AWS allows 5 a second
    # per shard, shared by every reader of the shard).
    kinesis_poll_interval_s: float = 1.0
    # Records per GetRecords call (AWS: at most 10,000).
    kinesis_max_records: int = 1000
    # Seconds between two ListShards calls (new shards after a split or merge).
    kinesis_shard_sync_s: float = 10.0
    # Seconds between two progress lines on stderr (0: none).
    ingest_progress_s: float = 5.0
    # How long an ingest bridge waits for the Kafka broker at start-up, in seconds.
    ingest_broker_timeout_s: float = 30.0

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Settings from AEGIS_* variables, then explicit overrides (None means 'not given')."""
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = _env(f.name.upper(), None)
            if raw is None:
                continue
            values[f.name] = _coerce(f.type, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        for key in ("config", "data_dir", "model_dir", "rules_file"):
            if values.get(key) is not None:
                values[key] = Path(values[key])  # type: ignore[arg-type]
        return cls(**values)  # type: ignore[arg-type]

    def rocksdb_options(self) -> dict[str, int]:
        """Faust's per-table RocksDB `options` (faust.stores.rocksdb.RocksDBOptions)."""
        mb = 2**20
        return {
            "write_buffer_size": self.rocksdb_write_buffer_mb * mb,
            "max_write_buffer_number": self.rocksdb_max_write_buffers,
            "target_file_size_base": self.rocksdb_write_buffer_mb * mb,
            "block_cache_size": self.rocksdb_block_cache_mb * mb,
        }

    def load_config(self) -> Config:
        """The schema and features config these settings name (the default preset when
        none is given); ConfigError naming the key if it is not usable."""
        from aegis_app.core import config  # config imports nothing of settings: no cycle

        return config.load(config.resolve(self.config))

    def with_(self, **changes: object) -> Settings:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


TRUE = ("1", "true", "yes", "on")


KAFKA_SECURITY_FIELDS = (
    "kafka_security_protocol",
    "kafka_sasl_mechanism",
    "kafka_sasl_username",
    "kafka_sasl_password_file",
    "kafka_ssl_cafile",
    "kafka_ssl_certfile",
    "kafka_ssl_keyfile",
)


def kafka_environment(settings: Settings) -> dict[str, str]:
    """The AEGIS_* variables that hand these TLS / SASL settings to a child process (not
    the password itself: a child inherits AEGIS_KAFKA_SASL_PASSWORD, or reads the file)."""
    return {
        f"AEGIS_{name.upper()}": str(value)
        for name in KAFKA_SECURITY_FIELDS
        if (value := getattr(settings, name)) is not None
    }


def env_value(field: str) -> str | None:
    """The raw AEGIS_* variable of a Settings field, None when it is not set (for callers
    that must tell "not set" from "set to the default")."""
    return _env(field.upper(), None)


def _coerce(type_name: object, raw: str) -> object:
    text = str(type_name)
    if text.startswith("bool"):
        return raw.strip().lower() in TRUE
    if text.startswith("int"):
        return int(raw)
    if text.startswith("float"):
        return float(raw)
    if text.startswith("Path"):
        return Path(raw)
    return raw


def broker_host_port(url: str) -> str:
    """'kafka://h:9092' -> 'h:9092' (first host), for plain Kafka clients."""
    first = url.split(";")[0].split(",")[0]
    return first.split("://", 1)[-1]


@contextmanager
def config_in_environment(path: Path) -> Iterator[None]:
    """AEGIS_CONFIG = `path` while a command runs (its parts and the processes it starts
    read it), then the caller's own value (or none) again."""
    before = os.environ.get("AEGIS_CONFIG")
    os.environ["AEGIS_CONFIG"] = str(path)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("AEGIS_CONFIG", None)
        else:
            os.environ["AEGIS_CONFIG"] = before
