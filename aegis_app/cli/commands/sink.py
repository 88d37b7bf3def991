"""`aegis sink --broker URL [--db-url URL]`: the decision sink on its own (group aegis-sink)."""

from __future__ import annotations

import argparse
import logging


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sink", help="store aegis.decisions in the result store")
    p.add_argument("--broker", help="Kafka URL, e.g. kafka://127.0.0.1:9092 (AEGIS_KAFKA_BROKER)")
    p.add_argument("--db-url", help="result store SQLAlchemy URL (AEGIS_DB_URL)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    logging.getLogger("alembic").setLevel(logging.WARNING)
    from aegis_app.core.settings import Settings
    from aegis_app.kafka import fetch_pacing
    from aegis_app.runtime import heap
    from aegis_app.serving.store import Store
    from aegis_app.serving.store.sink import run_forever

    settings = Settings.from_env(kafka_broker=args.broker, db_url=args.db_url)
    fetch_pacing.install(settings.fetch_interval_ms)
    store = Store(settings.db_url)
    try:
        heap.freeze_startup_heap()
        return run_forever(settings.kafka_broker, store, settings.partitions)
    finally:
        store.close()
