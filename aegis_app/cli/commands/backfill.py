"""`aegis backfill --data FILE [--broker URL] [--until DATETIME] [--quiet]`: start warm.

Builds every entity's feature state from a history file (tables/engine/snapshot.py: the
states the stream would hold after processing the file, labels included) and writes it
into the workers' state changelogs (aegis_app/worker/backfill.py). Workers that start
afterwards recover those states, so their first decisions already have the history's
windows instead of empty ones. Prints a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from aegis_app.cli.kafka_options import add_kafka_options, kafka_overrides

HELP = (
    "build the feature state from a history file and write it into the workers' state "
    "changelogs, so workers start warm; run it BEFORE the workers start (a running worker "
    "does not read it: stop them, backfill, start them with fresh data dirs)"
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("backfill", help=HELP, description=HELP)
    p.add_argument(
        "--data",
        type=Path,
        required=True,
        help="the history, CSV or Parquet, in the config's schema",
    )
    p.add_argument("--broker", help="Kafka URL, e.g. kafka://127.0.0.1:9092 (AEGIS_KAFKA_BROKER)")
    p.add_argument(
        "--until",
        metavar="DATETIME",
        help="only transactions before this time (UTC, e.g. 2018-04-20 or 2018-04-20 12:00:00); "
        "replay from it on",
    )
    p.add_argument(
        "--partitions",
        type=int,
        help="partitions per topic, as the workers' (AEGIS_PARTITIONS; a key's partition "
        "depends on it)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_kafka_options(p)
    p.set_defaults(func=run)


def parse_until(text: str | None) -> int | None:
    """--until as epoch seconds (UTC), or a ValueError naming the option."""
    if text is None:
        return None
    import pandas as pd

    try:
        stamp = pd.Timestamp(text)
    except (TypeError, ValueError):
        stamp = None
    if stamp is None or stamp is pd.NaT:
        raise ValueError(
            f"--until: cannot read {text!r} as a date and time "
            "(e.g. 2018-04-20 or 2018-04-20 12:00:00, UTC)"
        )
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return int(stamp.timestamp())


def run(args: argparse.Namespace) -> int:
    from aegis_app.cli.datafiles import read_normalised
    from aegis_app.core.records import format_datetime
    from aegis_app.core.settings import Settings
    from aegis_app.kafka.admin import BrokerError
    from aegis_app.worker import backfill

    until = parse_until(args.until)
    conf = Settings.from_env(
        kafka_broker=args.broker, partitions=args.partitions, **kafka_overrides(args)
    )
    frame = read_normalised(args.data, conf.load_config())
    if until is not None:
        frame = frame[frame["ts"] < until]
    if frame.empty:
        before = f" before {format_datetime(until)}" if until is not None else ""
        raise ValueError(f"{args.data}: no transactions{before} to build the state from")
    try:
        summary = backfill.backfill(conf, frame, progress=not args.quiet)
    except (BrokerError, backfill.WorkersRunningError) as exc:
        print(f"aegis backfill: {exc}", file=sys.stderr)
        return 1
    summary = {
        "data": str(args.data),
        "until": format_datetime(until) if until is not None else None,
        **summary,
    }
    print(json.dumps(summary))
    return 0
