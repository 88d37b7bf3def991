"""`aegis bench --transactions N --workers K [--rate R] --json`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from aegis_app.cli.kafka_options import add_kafka_options, kafka_overrides


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure end-to-end throughput and latency")
    p.add_argument("--transactions", type=int, default=20_000)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--rate", type=float, help="offered transactions per second (default: max)")
    p.add_argument("--broker", help="use this Kafka instead of a fresh embedded broker")
    p.add_argument("--model-dir", type=Path, help="model registry (default: train a small one)")
    p.add_argument("--partitions", type=int, help="partitions per topic (AEGIS_PARTITIONS)")
    p.add_argument("--json", action="store_true", help="print only the JSON result")
    p.add_argument(
        "--latencies-out",
        type=Path,
        metavar="FILE",
        help="write each transaction's latency to this CSV (ingested, decided, ms)",
    )
    add_kafka_options(p)  # for --broker: a cluster that requires TLS / SASL
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from aegis_app.core.settings import Settings
    from aegis_app.harness import bench

    settings = Settings.from_env(**kafka_overrides(args))
    result = bench.run(
        args.transactions,
        args.workers,
        args.rate,
        args.broker,
        args.model_dir,
        args.partitions,
        settings=settings,
        latencies_out=args.latencies_out,
    )
    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps(result, indent=2))
    return 0
