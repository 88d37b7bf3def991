"""`aegis retrain [--db-url URL] [--model-dir DIR] [--broker URL] [--every SECONDS] ...`

Trains challengers on the latest labelled window of the result store, compares them with
the active model (the champion) on the latest labelled holdout, and promotes the best one
if it beats the champion by `--margin` (models/lifecycle/retraining.py). The features are
the ones the stream stored with each decision, of the config the workers run (--config /
AEGIS_CONFIG). A promotion is announced on
aegis.model-updates, so every worker switches without a restart. With `--every` it runs on
a schedule, as the retraining job of a deployment (one such process per registry; a lock
file keeps two from training at once). Every run is recorded in MODEL_DIR/runs.jsonl.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from aegis_app.cli.kafka_options import add_kafka_options, kafka_overrides


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "retrain", help="train challengers from the store; promote one if it beats the champion"
    )
    p.add_argument("--db-url", help="result store (AEGIS_DB_URL)")
    p.add_argument("--model-dir", type=Path, help="model registry (AEGIS_MODEL_DIR)")
    p.add_argument("--broker", help="Kafka URL for the promotion announcement (AEGIS_KAFKA_BROKER)")
    add_kafka_options(p)
    p.add_argument(
        "--train-days",
        default="7,14",
        help="training-window lengths in days, one challenger each (default: 7,14)",
    )
    p.add_argument("--holdout-days", type=int, default=7, help="labelled holdout (default: 7)")
    p.add_argument("--delay", type=int, help="label delay in days (AEGIS_LABEL_DELAY_DAYS)")
    p.add_argument(
        "--metric",
        default="average_precision",
        choices=("average_precision", "auc_roc", "card_precision_at_100"),
        help="metric the promotion compares (default: average_precision)",
    )
    p.add_argument("--margin", type=float, default=0.01, help="required gain (default: 0.01)")
    p.add_argument(
        "--confidence",
        type=float,
        default=0.9,
        help="share of bootstrap resamples of the holdout the challenger must win (default: "
        "0.9; 0 turns the check off)",
    )
    p.add_argument("--min-frauds", type=int, default=10, help="fewer frauds: decide nothing")
    p.add_argument("--as-of", help="event time to decide at (labels known by then only)")
    p.add_argument("--every", type=float, help="run on a schedule, every this many seconds")
    p.add_argument("--no-announce", action="store_true", help="do not publish promotions")
    p.add_argument("--json", action="store_true", help="print each run as JSON")
    p.add_argument("--verbose", action="store_true", help="show training progress")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from aegis_app.core.settings import Settings
    from aegis_app.kafka.clients import KafkaConnection
    from aegis_app.serving.store import Store
    from models.lifecycle import retraining

    settings = Settings.from_env(
        db_url=args.db_url,
        model_dir=args.model_dir,
        kafka_broker=args.broker,
        label_delay_days=args.delay,
        **kafka_overrides(args),
    )
    connection = KafkaConnection.from_settings(settings)  # a bad TLS/SASL setting fails here
    # The features the stream stored with each decision: the config the workers run.
    features = settings.load_config()
    try:
        config = retraining.RetrainConfig(
            train_days=tuple(int(x) for x in str(args.train_days).split(",") if x.strip()),
            holdout_days=args.holdout_days,
            delay_days=settings.label_delay_days,
            metric=args.metric,
            margin=args.margin,
            confidence=args.confidence,
            min_frauds=args.min_frauds,
        )
        as_of = pd.Timestamp(args.as_of) if args.as_of else None
    except ValueError as exc:
        print(f"aegis retrain: {exc}", file=sys.stderr)
        return 2
    if args.every is not None and args.every <= 0:
        print("aegis retrain: --every must be positive", file=sys.stderr)
        return 2

    def announce(entry: dict) -> None:
        if args.no_announce:
            return
        from aegis_app.kafka.model_updates import announce_or_warn

        if announce_or_warn(connection, entry, settings.model_dir, "aegis retrain"):
            print(f"announced {entry['version']} on aegis.model-updates", file=sys.stderr)

    def report(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    store = Store(settings.db_url)
    try:
        while True:
            with retraining.exclusive(settings.model_dir) as mine:
                if mine:
                    result = retraining.retrain(
                        store,
                        settings.model_dir,
                        config,
                        as_of=as_of,
                        on_promote=announce,
                        report=report,
                        quiet=not args.verbose,
                        feature_config=features,
                    )
                    if args.json:
                        print(json.dumps(result, default=str), flush=True)
                else:
                    report("another retraining holds the registry lock; skipped")
            if args.every is None:
                return 0
            time.sleep(args.every)
    except KeyboardInterrupt:
        return 0
    finally:
        store.close()
