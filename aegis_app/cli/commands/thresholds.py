"""`aegis thresholds --scores SCORES.csv --data FILE [--target-precision P | --daily-budget N]
[--model-dir DIR] [--version V] [--plot out.png]`

Chooses the review and block thresholds of the ensemble score from `aegis evaluate
--scores-out` scores joined with the labels of the data file (models/thresholds.py), and
writes them into the model version's manifest (the active version by default).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("thresholds", help="choose review/block thresholds from evaluation scores")
    p.add_argument("--scores", type=Path, required=True, help="`aegis evaluate --scores-out` CSV")
    p.add_argument("--data", type=Path, required=True, help="the transactions, with labels")
    goal = p.add_mutually_exclusive_group()
    goal.add_argument("--target-precision", type=float, help="review at this precision")
    goal.add_argument(
        "--daily-budget", type=float, help="review this many cards a day (default: 100)"
    )
    p.add_argument("--column", default="ensemble", help="score column (default: ensemble)")
    p.add_argument("--model-dir", type=Path, help="model registry (AEGIS_MODEL_DIR)")
    p.add_argument("--version", help="model version to update (default: the active one)")
    p.add_argument("--plot", type=Path, help="write the PR curve and score histograms (PNG)")
    p.add_argument("--dry-run", action="store_true", help="print the choice, change nothing")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import shutil

    import pandas as pd

    from aegis_app.cli.datafiles import load_configured
    from aegis_app.core.settings import Settings
    from models.decisions import thresholds as rules
    from models.lifecycle import registry

    config = Settings.from_env().load_config()
    # The scores file starts with the config's id column (`aegis evaluate`); ids are text.
    id_column = config.source.transaction_id
    scores = pd.read_csv(args.scores, dtype={id_column: str})
    if id_column not in scores or args.column not in scores:
        raise ValueError(f"{args.scores}: needs {id_column!r} and {args.column!r} columns")
    scores = scores.rename(columns={id_column: "TRANSACTION_ID"})
    data = load_configured(args.data, config)
    labels = data[["TRANSACTION_ID", "CUSTOMER_ID", "TX_DATETIME", "TX_FRAUD"]]
    joined = scores[["TRANSACTION_ID", args.column]].merge(labels, on="TRANSACTION_ID")
    joined["TX_FRAUD"] = pd.to_numeric(joined["TX_FRAUD"], errors="coerce")
    joined = joined.dropna(subset=["TX_FRAUD", args.column])
    if joined.empty:
        raise ValueError(f"no labelled transaction of {args.data} has a score in {args.scores}")
    y = joined["TX_FRAUD"].to_numpy(dtype=int)
    values = joined[args.column].to_numpy(dtype=float)
    days = pd.to_datetime(joined["TX_DATETIME"]).to_numpy().astype("datetime64[D]")
    chosen = rules.choose(
        y,
        values,
        target_precision=args.target_precision,
        daily_budget=args.daily_budget,
        days=days,
        cards=joined["CUSTOMER_ID"].to_numpy(),
    )
    chosen["source"] = {
        "scores": str(args.scores),
        "data": str(args.data),
        "column": args.column,
        "first_day": str(days.min()),
        "last_day": str(days.max()),
        "unmatched_scores": int(len(scores) - len(joined)),
    }
    summary = {"thresholds": chosen["thresholds"], "selection": chosen}
    if args.plot:
        rules.plot(args.plot, y, values, chosen["thresholds"], title=args.column)
        summary["plot"] = str(args.plot)
    if not args.dry_run:
        model_dir = Settings.from_env(model_dir=args.model_dir).model_dir
        manifest = registry.update_thresholds(
            model_dir, args.version, chosen["thresholds"], selection=chosen
        )
        summary["model_dir"] = str(model_dir)
        summary["version"] = manifest.version
        # A copy beside the version, where the dashboard looks for the PR curve.
        folder = registry.version_dir(model_dir, manifest.version)
        if args.plot:
            shutil.copyfile(args.plot, folder / "pr_thresholds.png")
        else:
            rules.plot(folder / "pr_thresholds.png", y, values, chosen["thresholds"], args.column)
    print(json.dumps(summary, indent=2, default=str))
    return 0
