"""The Faust application: one App per worker process, configured from Settings.

`faust -A aegis_app.worker.app worker` and `aegis worker` both load this module; importing it
registers the tables, topics, agents and web views.
"""

from __future__ import annotations

import faust

from aegis_app.core.settings import Settings
from aegis_app.kafka import faust_compat, fetch_pacing
from aegis_app.runtime import blas_threads, gil

# Changelog end offsets from the Fetch high watermark too: the embedded Tansu broker's
# ListOffsets is too low, which broke failover (see aegis_app/faust_compat.py).
faust_compat.install()

settings = Settings.from_env()
faust_compat.set_fetch_max_wait(settings.fetch_max_wait_ms)
fetch_pacing.install(settings.fetch_interval_ms)
gil.set_switch_interval(settings.thread_switch_interval_ms)


def make_app(conf: Settings) -> faust.App:
    return faust.App(
        conf.app_id,
        broker=conf.kafka_broker,
        # rocksdict-backed RocksDB: one directory per worker process (data_dir).
        store="rocksdb://",
        datadir=str(conf.data_dir),
        topic_partitions=conf.partitions,
        topic_allow_declare=True,
        value_serializer="json",
        key_serializer="raw",
        consumer_auto_offset_reset="earliest",
        broker_rebalance_timeout=conf.rebalance_timeout_s,
        broker_session_timeout=max(conf.rebalance_timeout_s, 10.0),
        broker_heartbeat_interval=min(3.0, conf.rebalance_timeout_s / 3),
        table_standby_replicas=1,
        # table_route must hash a key as the input topics do (see faust_compat).
        Router=faust_compat.SourceKeyRouter,
        web_enabled=conf.web_port > 0,
        web_port=conf.web_port or 6066,
        web_bind="127.0.0.1",
        web_host="127.0.0.1",
        web_in_thread=False,
        producer_linger_ms=conf.producer_linger_ms,
        # Bounded per-partition fetches keep the card partitions close in event time when
        # catching up on a backlog: terminal features are exact while that skew stays
        # below the label delay (docs/FEATURES.md).
        consumer_max_fetch_size=conf.fetch_max_bytes,
        stream_buffer_maxsize=1024,
    )


app = make_app(settings)

# Registration side effects: tables, agents and views attach themselves to `app`.
from agents import card_stage, labels, scoring, terminal_stage, views  # noqa: E402,F401

# After the agents: their models have loaded NumPy's and SciPy's BLAS by now.
blas_threads.limit(settings.scoring_blas_threads)
