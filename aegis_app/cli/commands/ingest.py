"""`aegis ingest kinesis --stream NAME [--region R] [--endpoint-url URL] [--broker URL]`.

Bridges every shard of a Kinesis stream onto aegis.transactions (aegis_app/ingest). Each
option also has an AEGIS_* variable; prints a JSON summary on stdout when stopped
(SIGTERM/SIGINT), progress on stderr, and one line naming the cause when it cannot run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys

from aegis_app.cli.kafka_options import add_kafka_options, kafka_overrides


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ingest", help="bridge an outside stream onto aegis.transactions")
    sources = p.add_subparsers(dest="source", required=True)
    k = sources.add_parser(
        "kinesis",
        help="read every shard of an AWS Kinesis stream (credentials: the AWS chain)",
        description=(
            "Forward each record of a Kinesis stream (one JSON object in the simulator-file "
            "columns) to aegis.transactions, keyed by card; bad records go to "
            "aegis.deadletter. Shard checkpoints live in the result store and advance only "
            "after the broker acknowledged the records (at-least-once)."
        ),
    )
    k.add_argument("--stream", help="stream name (AEGIS_KINESIS_STREAM)")
    k.add_argument("--region", help="AWS region (AEGIS_KINESIS_REGION, else AWS_REGION)")
    k.add_argument(
        "--endpoint-url",
        help="a local or private Kinesis endpoint, e.g. http://127.0.0.1:5000 "
        "(AEGIS_KINESIS_ENDPOINT_URL)",
    )
    k.add_argument("--broker", help="Kafka URL, e.g. kafka://127.0.0.1:9092 (AEGIS_KAFKA_BROKER)")
    k.add_argument("--db-url", help="result store SQLAlchemy URL, for checkpoints (AEGIS_DB_URL)")
    k.add_argument(
        "--from",
        dest="start_from",
        choices=("trim_horizon", "latest"),
        help="where shards start while the stream has no checkpoint (AEGIS_KINESIS_FROM, "
        "default trim_horizon)",
    )
    k.add_argument(
        "--poll-interval",
        type=float,
        help="seconds between reads of a shard with nothing new (AEGIS_KINESIS_POLL_INTERVAL_S, "
        "default 1)",
    )
    k.add_argument(
        "--max-records",
        type=int,
        help="records per GetRecords, 1-10000 (AEGIS_KINESIS_MAX_RECORDS, default 1000)",
    )
    k.add_argument(
        "--shard-sync-interval",
        type=float,
        help="seconds between ListShards calls (AEGIS_KINESIS_SHARD_SYNC_S, default 10)",
    )
    k.add_argument(
        "--progress-interval",
        type=float,
        help="seconds between progress lines on stderr, 0 for none (AEGIS_INGEST_PROGRESS_S, "
        "default 5)",
    )
    k.add_argument(
        "--broker-timeout",
        type=float,
        help="seconds to wait for the broker at start (AEGIS_INGEST_BROKER_TIMEOUT_S, default 30)",
    )
    k.add_argument(
        "--partitions",
        type=int,
        help="partitions of the topics if this creates them (AEGIS_PARTITIONS)",
    )
    k.set_defaults(func=run_kinesis)
    add_kafka_options(k)


def run_kinesis(args: argparse.Namespace) -> int:
    logging.getLogger("alembic").setLevel(logging.WARNING)
    from aegis_app.core.settings import Settings
    from aegis_app.ingest.kinesis import BridgeOptions, IngestError, serve

    settings = Settings.from_env(
        kafka_broker=args.broker,
        db_url=args.db_url,
        partitions=args.partitions,
        kinesis_stream=args.stream,
        kinesis_region=args.region,
        kinesis_endpoint_url=args.endpoint_url,
        kinesis_from=args.start_from,
        kinesis_poll_interval_s=args.poll_interval,
        kinesis_max_records=args.max_records,
        kinesis_shard_sync_s=args.shard_sync_interval,
        ingest_progress_s=args.progress_interval,
        ingest_broker_timeout_s=args.broker_timeout,
        **kafka_overrides(args),
    )
    try:
        options = BridgeOptions.from_settings(settings)
    except ValueError as exc:
        print(f"aegis ingest kinesis: error: {exc}", file=sys.stderr)
        return 2
    try:
        summary = asyncio.run(serve(settings, options))
    except IngestError as exc:
        print(f"aegis ingest kinesis: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary), flush=True)
    return 0
