"""A simulator-schema file's figures next to the Handbook's published data set.

    .venv/bin/python scripts/simulator_check.py FILE [FILE ...] [--json-only]

FILE is CSV or Parquet in the simulator schema (e.g. from `aegis generate`). For each file
prints one JSON object (the figures, the published ones, and each figure's relative
difference) and then a table. The published figures are those listed in
../shared/docs/simulator.md for the Handbook's data (5,000 customers, 10,000 terminals,
183 days from 2018-04-01); "per day" figures are means over days 30 .. last, after the
28-day compromised-terminal windows have built up.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aegis_app.core import files  # noqa: E402

PUBLISHED: dict[str, float] = {
    "transactions": 1_754_155,
    "frauds": 14_681,
    "fraud_rate": 14_681 / 1_754_155,
    "customers_with_transactions": 4_990,
    "frauds_s1": 973,
    "frauds_s2": 9_077,
    "frauds_s3": 4_631,
    "per_day_transactions": 9_580,
    "per_day_frauds": 85,
    "per_day_compromised_cards": 75,
}
# Per-day means start here: the first 30 days are the build-up of the scenario windows.
STEADY_FROM_DAY = 30


def figures(frame: pd.DataFrame) -> dict[str, float]:
    """The published figures measured on a simulator-schema frame."""
    by_scenario = frame["TX_FRAUD_SCENARIO"].value_counts()
    steady = frame[frame["TX_TIME_DAYS"] >= STEADY_FROM_DAY]
    steady_days = pd.RangeIndex(STEADY_FROM_DAY, int(frame["TX_TIME_DAYS"].max()) + 1)
    frauds_by_day = steady[steady["TX_FRAUD"] == 1].groupby("TX_TIME_DAYS")

    def per_day(counts: pd.Series) -> float:
        return float(counts.reindex(steady_days, fill_value=0).mean())

    return {
        "transactions": len(frame),
        "frauds": int(frame["TX_FRAUD"].sum()),
        "fraud_rate": float(frame["TX_FRAUD"].mean()),
        "customers_with_transactions": int(frame["CUSTOMER_ID"].nunique()),
        "frauds_s1": int(by_scenario.get(1, 0)),
        "frauds_s2": int(by_scenario.get(2, 0)),
        "frauds_s3": int(by_scenario.get(3, 0)),
        "per_day_transactions": per_day(steady.groupby("TX_TIME_DAYS").size()),
        "per_day_frauds": per_day(frauds_by_day.size()),
        # A card is compromised on a day when it has at least one fraud that day.
        "per_day_compromised_cards": per_day(frauds_by_day["CUSTOMER_ID"].nunique()),
        # Not published, printed for context.
        "terminals_with_transactions": int(frame["TERMINAL_ID"].nunique()),
        "days": int(frame["TX_TIME_DAYS"].max()) + 1 if len(frame) else 0,
    }


def report(path: str) -> dict[str, object]:
    measured = figures(files.read_transactions(path))
    difference = {
        name: round(measured[name] / published - 1, 4) for name, published in PUBLISHED.items()
    }
    return {"file": path, "measured": measured, "published": PUBLISHED, "difference": difference}


def _shown(name: str, value: float | None) -> str:
    if value is None:
        return "-"
    if name == "fraud_rate":
        return f"{value:.3%}"
    return f"{value:,}" if float(value).is_integer() else f"{value:,.1f}"


def table(result: dict[str, Any]) -> str:
    """The result as a Markdown table: figure, published, measured, relative difference."""
    lines = [
        f"{result['file']}",
        "",
        "| figure | published | measured | difference |",
        "|---|---:|---:|---:|",
    ]
    for name, value in result["measured"].items():
        difference = result["difference"].get(name)
        lines.append(
            f"| {name} | {_shown(name, PUBLISHED.get(name))} | {_shown(name, value)} "
            f"| {'-' if difference is None else f'{difference:+.1%}'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", help="simulator-schema CSV or Parquet files")
    parser.add_argument("--json-only", action="store_true", help="print only the JSON lines")
    args = parser.parse_args(argv)
    results = [report(path) for path in args.files]
    for result in results:
        print(json.dumps(result))
    if not args.json_only:
        for result in results:
            print()
            print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
