"""Per-event cost of the feature engine's stream path (tables/engine), as the worker runs it.

    PYTHONPATH=. .venv/bin/python scripts/engine_profile.py [--config configs/handbook.toml]
        [--data FILE] [--transactions 30000] [--top 14]

Streams the first N transactions (in time order) of a file through
StreamEngine.observe_entity of each entity, then transaction_features, the way the worker
does, delivering each fraud label to the entities that take labels at its known time (label
delay after the transaction, before the first transaction at or after it). Prints:

- the engine's start and the first call of each entity (compiling or loading compiled
  code, if any, is in one of them);
- microseconds per transaction (first call left out) for each entity, the per-transaction
  features, labels, and the entities together;
- the top lines of a cProfile of 3,000 further transactions (by own time).

--data: a file the config's source reader reads (CSV, CSV.gz, Parquet); without it, the
Handbook simulator's output (--customers 500, --terminals 1000, --days 60, seed 0: 56,000
transactions, so that 30,000 fill a month of windows), which fits only the Handbook preset.
The engine imported is the first `tables` on the path: PYTHONPATH chooses the tree measured
(this script's own tree otherwise).
"""

from __future__ import annotations

import argparse
import cProfile
import heapq
import io
import pstats
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT))  # after PYTHONPATH: it chooses the tree measured

from aegis_app.core.config import load  # noqa: E402
from aegis_app.core.source import SourceReader  # noqa: E402
from aegis_app.core.timerules import label_known_at  # noqa: E402
from tables.engine import StreamEngine  # noqa: E402

PROFILED = 3000


def records_of(
    config_path: Path, data: Path | None, customers: int, terminals: int, days: int
) -> list[dict]:
    config = load(config_path)
    reader = SourceReader(config)
    if data is None:
        from aegis_app.harness.simulator import generate

        frame, bad = reader.frame(generate(customers, terminals, days, seed=0))
    else:
        frame, bad = reader.read_file(data)
    if bad:
        raise SystemExit(f"{len(bad)} row(s) do not fit the config, e.g. {bad[0]}")
    records = frame.sort_values("ts", kind="stable").to_dict("records")
    for record in records:
        record["ts"] = int(record["ts"])
        label = record.get("label")
        record["label"] = None if label is None or label != label else int(label)
    return records


class Replay:
    """The worker's calls: each entity's observe_entity, the transaction features, labels."""

    def __init__(self, engine: StreamEngine, label_delay_days: float) -> None:
        self.engine = engine
        self.delay = label_delay_days
        self.states: dict[tuple[str, str], bytes] = {}
        self.pending: list[tuple[int, int, dict]] = []
        self.seconds = {name: 0.0 for name in (*engine.entities, "transaction", "labels")}
        self.first_call: dict[str, float] = {}

    def run(self, records: list[dict]) -> None:
        engine, seconds, clock = self.engine, self.seconds, time.perf_counter
        for record in records:
            started = clock()
            while self.pending and self.pending[0][0] <= record["ts"]:
                known_at, _, labelled = heapq.heappop(self.pending)
                self.label(labelled, known_at)
            seconds["labels"] += clock() - started
            keys = engine.keys(record)
            for entity in engine.entities:
                if keys[entity] is None:
                    continue
                state_key = (entity, keys[entity])
                started = clock()
                _, state = engine.observe_entity(entity, record, self.states.get(state_key))
                took = clock() - started
                if entity in self.first_call:
                    seconds[entity] += took
                else:
                    self.first_call[entity] = took
                self.states[state_key] = state
            started = clock()
            engine.transaction_features(record)
            seconds["transaction"] += clock() - started
            if record["label"] == 1:
                known = label_known_at(record["ts"], self.delay)
                heapq.heappush(self.pending, (known, id(record), record))

    def label(self, record: dict, known_at: int) -> None:
        for key in label_keys(self.engine, record):
            self.states[key] = self.engine.observe_label(
                key[0], self.states.get(key), record["transaction_id"], record["ts"], known_at, True
            )


def label_keys(engine: StreamEngine, record: dict) -> list[tuple[str, str]]:
    """StreamEngine.label_keys; from keys and label_entities in a tree older than it."""
    if hasattr(engine, "label_keys"):
        return engine.label_keys(record)
    keys = engine.keys(record)
    return [(e, keys[e]) for e in engine.label_entities if keys[e] is not None]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "handbook.toml")
    parser.add_argument("--data", type=Path, help="default: the Handbook simulator's output")
    parser.add_argument("--transactions", type=int, default=30_000)
    parser.add_argument("--customers", type=int, default=500, help="simulated (without --data)")
    parser.add_argument("--terminals", type=int, default=1000, help="simulated (without --data)")
    parser.add_argument("--days", type=int, default=60, help="simulated (without --data)")
    parser.add_argument("--top", type=int, default=14, help="cProfile lines printed")
    args = parser.parse_args()

    import tables

    records = records_of(args.config, args.data, args.customers, args.terminals, args.days)
    timed = records[: args.transactions]
    profiled = records[args.transactions : args.transactions + PROFILED]
    started = time.perf_counter()
    engine = StreamEngine(load(args.config))
    start_s = time.perf_counter() - started
    replay = Replay(engine, engine.plan.config.label_delay_days)
    print(f"engine: {Path(tables.__file__).parent.parent}; config: {args.config}")
    replay.run(timed)
    n = len(timed)
    print(
        f"engine start {start_s * 1e3:.0f} ms; first call: "
        + ", ".join(f"{e} {s * 1e3:.1f} ms" for e, s in replay.first_call.items())
    )
    per = {name: s / n * 1e6 for name, s in replay.seconds.items()}
    entities = sum(per[e] for e in engine.entities)
    print(
        f"{n} transactions, us per transaction: "
        + ", ".join(f"{name} {us:.1f}" for name, us in per.items())
        + f"; entities together {entities:.1f}; all {sum(per.values()):.1f}"
    )
    if profiled:
        profile = cProfile.Profile()
        profile.enable()
        replay.run(profiled)
        profile.disable()
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(args.top)
        print(f"cProfile of {len(profiled)} further transactions (by own time):")
        print(out.getvalue().split("\n", 3)[-1].strip("\n"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
