"""`aegis retrain-study [--out DIR] [--customers N] [--days N] [--drift-day D] ...`

Streams generated data with a new fraud pattern starting mid-stream through a live stack
(broker, worker, sink), retraining weekly from the store, and compares the static first
model with continuous retraining per week (aegis_app/retrain_study.py). Writes
retrain-study.json and retrain-study.png into --out.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "retrain-study", help="static model vs continuous retraining through a live stack"
    )
    p.add_argument("--out", type=Path, default=Path("var/retrain-study"))
    p.add_argument("--workdir", type=Path, help="keep the stack's logs, store and models here")
    p.add_argument("--customers", type=int, default=1000)
    p.add_argument("--terminals", type=int, default=2000)
    p.add_argument("--days", type=int, default=84)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--drift-day", type=int, default=42, help="spending bursts start on this day")
    p.add_argument("--cards-per-day", type=int, default=4, help="cards tested per day")
    p.add_argument("--first-week-day", type=int, default=28)
    p.add_argument("--margin", type=float, default=0.01)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from aegis_app.harness.retrain_study import StudyConfig, run_study

    if args.first_week_day + 7 > args.days:
        print("aegis retrain-study: --days must cover at least one week after --first-week-day")
        return 2
    config = StudyConfig(
        customers=args.customers,
        terminals=args.terminals,
        days=args.days,
        seed=args.seed,
        drift_day=args.drift_day,
        cards_per_day=args.cards_per_day,
        first_week_day=args.first_week_day,
        margin=args.margin,
    )
    run_study(
        config, args.out, args.workdir, report=lambda m: print(m, file=sys.stderr, flush=True)
    )
    return 0
