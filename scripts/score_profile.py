"""Per-stage cost of the scorer's per-batch work, in µs per transaction, at given batch sizes.

    .venv/bin/python scripts/score_profile.py --model-dir DIR --data FILE \
        [--config FILE] [--batch 1 50 200 500] [--rows 5000] [--first] [--rounds 5] \
        [--rules FILE]

What the worker times as ``score_us_per_event`` (agents/scoring.py ``MicroBatchScorer._score``):
models/decisions/decision.py ``build_decisions`` on a batch of (record, features), then the
JSON encoding of each decision. The batches are consecutive transactions of --data (the
last --rows of it in time order, or the first with --first), normalised by the config's
source reader, with the features the batch engine computes for them (equal to the
stream's), scored by the active model of --model-dir; --rules is a rules file
(AEGIS_RULES_FILE's format; default: none, as a worker without one).

Each stage is timed on its own, batch by batch, over the same rows; ``total`` is the whole
``build_decisions`` + encoding timed as one call (what the worker measures), and ``sum``
the stages added up. Each figure is the best of --rounds rounds (this machine is shared:
the best round is the least disturbed one). Prints a table per batch size, and one JSON
object with every figure on the last line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aegis_app.core.settings import Settings  # noqa: E402
from aegis_app.core.source import SourceReader  # noqa: E402
from aegis_app.kafka import raw_producer  # noqa: E402
from aegis_app.runtime.process import tune_process  # noqa: E402
from models.decisions import decision as decisions  # noqa: E402
from models.decisions.policy import Rules  # noqa: E402
from models.lifecycle import registry  # noqa: E402
from models.rules.live import LiveRules  # noqa: E402
from models.rules.vocabulary import Vocabulary  # noqa: E402
from tables.engine import StreamEngine, compute_features  # noqa: E402


def load_items(data: Path, config, rows: int, first: bool = False) -> list[tuple[dict, dict, int]]:
    """The last (or first) `rows` transactions of `data` in time order, as (record,
    features, ingested_ms); the features with the whole history before them."""
    frame, _ = SourceReader(config).read_file(data)
    frame = frame.sort_values("ts", kind="stable").reset_index(drop=True)
    frame["features"] = compute_features(frame, config).to_dict("records")
    part = frame.head(rows) if first else frame.tail(rows)
    records = part.drop(columns=["label", "features"], errors="ignore").to_dict("records")
    return [(r, f, 0) for r, f in zip(records, part["features"])]


def stage_functions(bundle, rule_set, vocabulary, entity_keys) -> dict[str, Callable]:
    """Stage name -> function(batch state), run in order; each reads what earlier ones left."""
    review = bundle.thresholds.get("review", float("inf"))
    # The stages as build_decisions runs them here, or (trees before the compiled ensemble,
    # for the "before" column of BENCHMARKS.md) as it ran them there.
    current = hasattr(decisions, "decide_all")

    def matrix(s):
        s["X"] = decisions.feature_matrix(bundle, [item[1] for item in s["items"]])

    def detector(name):
        def run(s):
            s.setdefault("raw", {})[name] = np.asarray(
                bundle.detectors[name].score(bundle.detector_input(name, s["X"])),
                dtype=np.float64,
            )

        return run

    def combine(s):
        s["scores"] = {**s["raw"], "ensemble": bundle.combine(s["raw"])}

    def explain(s):
        ensemble = s["scores"]["ensemble"]
        if current:
            s["explanations"] = decisions.explain_alerts(bundle, s["X"], ensemble)
        else:  # before: one call per row at or above review
            s["explanations"] = [
                bundle.explain(s["X"][i]) if score >= review else []
                for i, score in enumerate(ensemble)
            ]

    def rules(s):
        if current:
            ensemble = s["scores"]["ensemble"]
            s["outcomes"] = decisions.decide_all(
                bundle, rule_set, vocabulary, s["items"], ensemble, s["explanations"]
            )
            return
        from models.rules.rule import Evaluation, decide

        out = []
        for i, (tx, features, _) in enumerate(s["items"]):
            found = (
                rule_set.evaluate(vocabulary.variables(tx, features))
                if rule_set.rules
                else Evaluation()
            )
            score = float(s["scores"]["ensemble"][i])
            out.append((found, *decide(score, bundle.thresholds, found, s["explanations"][i])))
        s["outcomes"] = out

    def dicts(s):
        if current:
            s["decisions"] = decisions.decision_records(
                bundle,
                s["items"],
                s["scores"],
                s["outcomes"],
                "2026-12-04T00:00:00.000+00:00",
                entity_keys,
            )
            return
        from aegis_app.core.codec import extra_fields
        from aegis_app.core.records import format_datetime

        out = []
        scores = s["scores"]
        for i, ((tx, features, ingested_ms), (found, action, reasons)) in enumerate(
            zip(s["items"], s["outcomes"])
        ):
            out.append(
                {
                    "transaction_id": tx["transaction_id"],
                    "card": tx["card"],
                    "merchant": tx["merchant"],
                    "amount": tx["amount"],
                    "ts": tx["ts"],
                    "tx_datetime": format_datetime(tx["ts"]),
                    "fields": extra_fields(tx),
                    "entities": entity_keys(tx),
                    "action": action,
                    "score": float(scores["ensemble"][i]),
                    "scores": {name: float(values[i]) for name, values in scores.items()},
                    "reasons": reasons,
                    "rules": found.hits(),
                    "rule_errors": found.error_list(),
                    "model_version": bundle.version,
                    "features": features,
                    "ingested_ms": ingested_ms,
                    "decided_at": "2026-12-04T00:00:00.000+00:00",
                }
            )
        s["decisions"] = out

    def encode(s):
        s["encoded"] = [raw_producer.dumps(d) for d in s["decisions"]]

    stages = {"matrix": matrix}
    stages.update({name: detector(name) for name in bundle.detectors})
    stages.update(combine=combine, explain=explain, rules=rules, dicts=dicts, encode=encode)
    return stages


def profile(bundle, rule_set, vocabulary, entity_keys, items, batch: int, rounds: int) -> dict:
    batches = [items[i : i + batch] for i in range(0, len(items) - batch + 1, batch)]
    n = batch * len(batches)
    stages = stage_functions(bundle, rule_set, vocabulary, entity_keys)

    def whole(b):
        found = decisions.build_decisions(bundle, rule_set, vocabulary, b, entity_keys=entity_keys)
        return [raw_producer.dumps(d) for d in found]

    whole(batches[0])  # warm-up (and a JIT's first call, if any)
    best: dict[str, float] = {}
    for _ in range(rounds):
        spent = dict.fromkeys([*stages, "total"], 0.0)
        for b in batches:
            state = {"items": b}
            for name, run in stages.items():
                started = time.perf_counter()
                run(state)
                spent[name] += time.perf_counter() - started
            started = time.perf_counter()
            whole(b)
            spent["total"] += time.perf_counter() - started
        for name, seconds in spent.items():
            best[name] = min(best.get(name, float("inf")), seconds / n * 1e6)
    best["sum"] = sum(v for k, v in best.items() if k != "total")
    alerts = sum(
        int(
            (
                bundle.score(bundle.matrix([f for _, f, _ in b]))["ensemble"]
                >= bundle.thresholds.get("review", float("inf"))
            ).sum()
        )
        for b in batches
    )
    return {"rows": n, "at_or_above_review": alerts, **{k: round(v, 2) for k, v in best.items()}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="transactions (CSV or Parquet)")
    parser.add_argument("--config", type=Path, help="the model's config (AEGIS_CONFIG)")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 50, 200, 500])
    parser.add_argument("--rows", type=int, default=5000, help="transactions per round")
    parser.add_argument(
        "--first",
        action="store_true",
        help="the first --rows transactions instead of the last: with no history yet, "
        "nearly all at or above review (as in a fresh `aegis bench`)",
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rules", type=Path, help="a rules file (AEGIS_RULES_FILE format)")
    args = parser.parse_args()
    settings = Settings.from_env(config=args.config)
    config = settings.load_config()
    started = time.perf_counter()
    bundle = registry.load(args.model_dir, config=config)
    load_s = time.perf_counter() - started
    vocabulary = Vocabulary.from_config(config)
    rule_set = LiveRules.of(vocabulary, Rules.from_file(args.rules)).rule_set
    entity_keys = StreamEngine(config).keys
    items = load_items(args.data, config, args.rows, args.first)
    # As a worker sets itself up once started: one BLAS thread, the GIL switch interval,
    # the start-up heap frozen (aegis_app/runtime/process.py).
    tune_process(settings, scoring=True)
    result = {"model_version": bundle.version, "load_s": round(load_s, 3), "batches": {}}
    for batch in args.batch:
        figures = profile(bundle, rule_set, vocabulary, entity_keys, items, batch, args.rounds)
        result["batches"][batch] = figures
        print(
            f"batch {batch} ({figures['rows']} transactions, "
            f"{figures['at_or_above_review']} at or above review), µs per transaction:"
        )
        for name, value in figures.items():
            if name not in ("rows", "at_or_above_review"):
                print(f"  {name:20s} {value:9.2f}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
