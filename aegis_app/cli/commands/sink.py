"""`aegis sink --broker URL [--db-url URL]`: the decision sink on its own (group aegis-sink)."""

from __future__ import annotations

import argparse
import logging

from aegis_app.cli.kafka_options import add_kafka_options, kafka_overrides


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sink", help="store aegis.decisions in the result store")
    p.add_argument("--broker", help="Kafka URL, e.g. kafka://127.0.0.1:9092 (AEGIS_KAFKA_BROKER)")
    p.add_argument("--db-url", help="result store SQLAlchemy URL (AEGIS_DB_URL)")
    add_kafka_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    logging.getLogger("alembic").setLevel(logging.WARNING)
    from aegis_app.core.settings import Settings
    from aegis_app.kafka import private_names
    from aegis_app.kafka.clients import KafkaConnection
    from aegis_app.runtime.process import tune_process
    from aegis_app.serving.store import Store
    from aegis_app.serving.store.sink import run_forever

    settings = Settings.from_env(
        kafka_broker=args.broker, db_url=args.db_url, **kafka_overrides(args)
    )
    connection = KafkaConnection.from_settings(settings)  # a bad TLS/SASL setting fails here
    private_names.check()  # fail now, naming them, if aiokafka lacks names Aegis relies on
    store = Store(settings.db_url)
    try:
        tune_process(settings, scoring=False)
        # The connection carries the fetch interval its consumer is paced by.
        return run_forever(connection, store, settings.partitions)
    finally:
        store.close()
