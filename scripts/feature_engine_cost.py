"""Cost of the config-compiled feature engine (tables/engine): batch and stream, per record,
and the packed state it keeps per entity (card, merchant, ...).

    .venv/bin/python scripts/feature_engine_cost.py [--customers 5000] [--terminals 10000]
        [--days 183] [--stream-limit N] [--sparkov PATH]

Handbook preset (configs/handbook.toml) on a generated simulation (simulator defaults:
5,000 customers, 10,000 terminals, 183 days, seed 0), normalised by the preset's source
reader (aegis_app.core.source); Sparkov preset (configs/sparkov.toml) on the public slice
(13,614 rows) when it is found. For each:

- batch: tables.engine.compute_features on the whole frame, microseconds per record;
- stream: every record replayed in time order through StreamEngine.observe (state decode,
  update, features, prune, encode), each fraud label delivered to the entities that take
  labels at its known time (label delay after the transaction), before the first record
  at or after it; microseconds per record and per label;
- state bytes per key of each entity (the role or field it is keyed by beside it: card,
  merchant, ...) at the end of the replay: keys, mean, median, p99, max.

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

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aegis_app.core.config import Config, load  # noqa: E402
from aegis_app.core.source import SourceReader  # noqa: E402
from aegis_app.core.timerules import label_known_at  # noqa: E402
from aegis_app.harness.simulator import generate  # noqa: E402
from tables.engine import StreamEngine, compute_features  # noqa: E402

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


def normalised(config: Config, raw: pd.DataFrame) -> pd.DataFrame:
    """The raw rows normalised by the config's source reader, in time order."""
    frame, bad = SourceReader(config).frame(raw)
    if bad:
        raise SystemExit(f"{len(bad)} row(s) do not fit the config, e.g. {bad[0]}")
    return frame.sort_values("ts", kind="stable")


def stream_records(frame: pd.DataFrame) -> list[dict]:
    """The frame's rows as the stream's normalised records (plain ints, None for missing)."""
    records = frame.to_dict("records")
    for record in records:
        record["ts"] = int(record["ts"])
        label = record.get("label")
        record["label"] = None if label is None or label != label else int(label)
    return records


def replay(config: Config, records: list[dict]) -> dict:
    """Every record through the engine in order, labels at their known time."""
    engine = StreamEngine(config)
    delay = config.label_delay_days
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
                if keys[entity] is None:
                    continue
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
            heapq.heappush(pending, (label_known_at(record["ts"], delay), i))
    by_entity: dict[str, list[int]] = {}
    for (entity, _), blob in states.items():
        by_entity.setdefault(entity, []).append(len(blob))
    return {
        "records": len(records),
        "us_per_record": round(observe_s / max(len(records), 1) * 1e6, 1),
        "us_per_label": round(label_s / max(labels, 1) * 1e6, 1),
        "labels": labels,
        "state_bytes": {
            entity: {"keyed_by": config.entities[entity], **sizes(values)}
            for entity, values in by_entity.items()
        },
    }


def measure(config: Config, frame: pd.DataFrame, stream_limit: int | None) -> dict:
    started = time.perf_counter()
    compute_features(frame, config)
    batch_s = time.perf_counter() - started
    records = stream_records(frame)
    if stream_limit:
        records = records[:stream_limit]
    return {
        "rows": len(frame),
        "label_delay_days": config.label_delay_days,
        "batch_us_per_record": round(batch_s / max(len(frame), 1) * 1e6, 2),
        "stream": replay(config, records),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--terminals", type=int, default=10000)
    parser.add_argument("--days", type=int, default=183)
    parser.add_argument("--stream-limit", type=int, help="replay only the first N records")
    parser.add_argument("--sparkov", type=Path, default=SPARKOV)
    args = parser.parse_args()

    handbook = load(ROOT / "configs" / "handbook.toml")
    raw = generate(customers=args.customers, terminals=args.terminals, days=args.days, seed=0)
    out: dict = {"handbook": measure(handbook, normalised(handbook, raw), args.stream_limit)}
    out["handbook"]["days"] = args.days
    if args.sparkov.exists():
        sparkov = load(ROOT / "configs" / "sparkov.toml")
        reader = SourceReader(sparkov)
        raw = pd.read_csv(args.sparkov, dtype=reader.csv_dtypes())
        out["sparkov"] = measure(sparkov, normalised(sparkov, raw), args.stream_limit)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
