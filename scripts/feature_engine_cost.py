"""Cost of the config-compiled feature engine (tables/engine) against today's feature states
(tables/features.py CardState / TerminalState as JSON, tables/batch.py).

    .venv/bin/python scripts/feature_engine_cost.py [--customers 5000] [--terminals 10000]
        [--days 183] [--stream-limit N] [--skip-old-batch] [--sparkov PATH]

Handbook preset (configs/handbook.toml) on a generated simulation (simulator defaults:
5,000 customers, 10,000 terminals, 183 days, seed 0):

- stream: every transaction replayed in time order through StreamEngine.observe (state
  decode, update, features, prune, encode) and, in the same loop, through today's
  CardState/TerminalState with their JSON round trip; each fraud label delivered to the
  terminal state at its known time (7 days after the transaction), before the first
  transaction at or after it. Microseconds per record of each, and state bytes per card and
  per terminal at the end of the replay.
- batch: tables.engine.compute_features against tables.batch.compute_features, microseconds
  per record.

Sparkov preset (configs/sparkov.toml) on the public slice (13,614 rows), normalised by the
preset's source reader (aegis_app.core.source): stream and batch microseconds per record,
state bytes at the end of the slice.

Prints JSON.
"""

from __future__ import annotations

import argparse
import heapq
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aegis_app.core.config import load  # noqa: E402
from aegis_app.core.source import SourceReader  # noqa: E402
from aegis_app.core.timerules import DAY, label_known_at  # noqa: E402
from aegis_app.harness.simulator import generate  # noqa: E402
from tables.batch import compute_features as todays_batch  # noqa: E402
from tables.engine import StreamEngine, compute_features  # noqa: E402
from tables.features import CardState, TerminalState, assemble  # noqa: E402

SPARKOV = ROOT.parent / "shared" / "data" / "sparkov-slice.csv.gz"


def sizes(values: list[int]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "keys": len(ordered),
        "mean": round(statistics.fmean(ordered), 1),
        "median": ordered[len(ordered) // 2],
        "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        "max": ordered[-1],
    }


def handbook_frame(df: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "transaction_id": df["TRANSACTION_ID"].astype(str),
            "card": df["CUSTOMER_ID"].astype(str),
            "merchant": df["TERMINAL_ID"].astype(str),
            "amount": df["TX_AMOUNT"].astype(float),
            "ts": df["TX_DATETIME"].to_numpy(dtype="datetime64[s]").astype(np.int64),
            "label": df["TX_FRAUD"],
        }
    )


def sparkov_frame(path: Path) -> pd.DataFrame:
    """The Sparkov slice, normalised by the source reader of its preset."""
    reader = SourceReader(load(ROOT / "configs" / "sparkov.toml"))
    frame, bad = reader.frame(pd.read_csv(path, dtype=reader.csv_dtypes()))
    assert not bad, bad[:3]
    return frame.sort_values("ts", kind="stable")


def replay_engine(engine: StreamEngine, records: list[dict], label_delay: int) -> dict:
    """Every record through the engine in order, labels at their known time."""
    states: dict[tuple[str, str], bytes] = {}
    pending: list[tuple[int, int]] = []
    observe_s = label_s = 0.0
    labels = 0
    for i, record in enumerate(records):
        while pending and pending[0][0] <= record["ts"]:
            known_at, j = heapq.heappop(pending)
            labelled = records[j]
            keys = engine.keys(labelled)
            started = time.perf_counter()
            for entity in engine.label_entities:
                key = (entity, keys[entity])
                states[key] = engine.observe_label(
                    entity,
                    states.get(key),
                    labelled["transaction_id"],
                    labelled["ts"],
                    known_at,
                    True,
                )
            label_s += time.perf_counter() - started
            labels += 1
        started = time.perf_counter()
        keys = engine.keys(record)
        _, new = engine.observe(record, {e: states.get((e, k)) for e, k in keys.items()})
        for entity, blob in new.items():
            states[(entity, keys[entity])] = blob
        observe_s += time.perf_counter() - started
        if record["label"] == 1:
            heapq.heappush(pending, (label_known_at(record["ts"], label_delay), i))
    by_entity: dict[str, list[int]] = {}
    for (entity, _), blob in states.items():
        by_entity.setdefault(entity, []).append(len(blob))
    return {
        "us_per_record": round(observe_s / len(records) * 1e6, 1),
        "us_per_label": round(label_s / max(labels, 1) * 1e6, 1),
        "labels": labels,
        "state_bytes": {entity: sizes(values) for entity, values in by_entity.items()},
    }


def replay_both(engine: StreamEngine, records: list[dict], label_delay: int) -> dict:
    """The Handbook replay through the engine and through today's JSON states, record by
    record in the same loop (so both see the same machine load)."""
    states: dict[tuple[str, str], bytes] = {}
    cards: dict[str, str] = {}
    terminals: dict[str, str] = {}
    pending: list[tuple[int, int]] = []
    new_s = old_s = 0.0
    for i, record in enumerate(records):
        while pending and pending[0][0] <= record["ts"]:
            known_at, j = heapq.heappop(pending)
            labelled = records[j]
            key = ("terminal", labelled["merchant"])
            states[key] = engine.observe_label(
                "terminal",
                states.get(key),
                labelled["transaction_id"],
                labelled["ts"],
                known_at,
                True,
            )
            terminal = TerminalState.from_value(json.loads(terminals[labelled["merchant"]]))
            terminal.add_label(int(labelled["transaction_id"]), labelled["ts"], known_at, True)
            terminals[labelled["merchant"]] = json.dumps(terminal.to_value())
        started = time.perf_counter()
        keys = engine.keys(record)
        _, new = engine.observe(record, {e: states.get((e, k)) for e, k in keys.items()})
        for entity, blob in new.items():
            states[(entity, keys[entity])] = blob
        middle = time.perf_counter()
        tx_id, card_id, terminal_id = (
            int(record["transaction_id"]),
            record["card"],
            record["merchant"],
        )
        card_value = cards.get(card_id)
        card = CardState.from_value(json.loads(card_value) if card_value else None)
        card_part = card.observe(tx_id, record["ts"], record["amount"], int(terminal_id))
        cards[card_id] = json.dumps(card.to_value())
        terminal_value = terminals.get(terminal_id)
        terminal = TerminalState.from_value(json.loads(terminal_value) if terminal_value else None)
        terminal_part = terminal.observe(tx_id, record["ts"], label_delay)
        terminals[terminal_id] = json.dumps(terminal.to_value())
        assemble(record["amount"], record["ts"], card_part, terminal_part)
        ended = time.perf_counter()
        new_s += middle - started
        old_s += ended - middle
        if record["label"] == 1:
            heapq.heappush(pending, (label_known_at(record["ts"], label_delay), i))
    engine_bytes: dict[str, list[int]] = {}
    for (entity, _), blob in states.items():
        engine_bytes.setdefault(entity, []).append(len(blob))
    return {
        "records": len(records),
        "engine_us_per_record": round(new_s / len(records) * 1e6, 1),
        "todays_json_us_per_record": round(old_s / len(records) * 1e6, 1),
        "engine_state_bytes": {e: sizes(v) for e, v in engine_bytes.items()},
        "todays_json_state_bytes": {
            "card": sizes([len(v.encode()) for v in cards.values()]),
            "terminal": sizes([len(v.encode()) for v in terminals.values()]),
        },
    }


def batch_us(fn, rows: int) -> float:
    started = time.perf_counter()
    fn()
    return round((time.perf_counter() - started) / rows * 1e6, 2)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--terminals", type=int, default=10000)
    parser.add_argument("--days", type=int, default=183)
    parser.add_argument("--stream-limit", type=int, help="replay only the first N records")
    parser.add_argument("--skip-old-batch", action="store_true", help="skip tables.batch")
    parser.add_argument("--sparkov", type=Path, default=SPARKOV)
    args = parser.parse_args()

    handbook = load(ROOT / "configs" / "handbook.toml")
    delay = handbook.label_delay_days
    df = generate(customers=args.customers, terminals=args.terminals, days=args.days, seed=0)
    frame = handbook_frame(df)
    out: dict = {"handbook": {"rows": len(frame), "days": args.days}}

    out["handbook"]["batch_engine_us_per_record"] = batch_us(
        lambda: compute_features(frame, handbook), len(frame)
    )
    if not args.skip_old_batch:
        out["handbook"]["batch_todays_us_per_record"] = batch_us(
            lambda: todays_batch(df, delay), len(df)
        )
    records = frame.to_dict("records")
    for record in records:
        record["ts"] = int(record["ts"])
    if args.stream_limit:
        records = records[: args.stream_limit]
    out["handbook"]["stream"] = replay_both(StreamEngine(handbook), records, delay)

    if args.sparkov.exists():
        sparkov = load(ROOT / "configs" / "sparkov.toml")
        slice_frame = sparkov_frame(args.sparkov)
        rows = slice_frame.to_dict("records")
        for record in rows:
            record["ts"] = int(record["ts"])
            record["dob"] = int(record["dob"])
        out["sparkov"] = {
            "rows": len(rows),
            "batch_engine_us_per_record": batch_us(
                lambda: compute_features(slice_frame, sparkov), len(rows)
            ),
            "stream": replay_engine(StreamEngine(sparkov), rows, sparkov.label_delay_days),
        }
    out["label_delay_days"] = delay
    out["seconds_per_day"] = DAY
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
