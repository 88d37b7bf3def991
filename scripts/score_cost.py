"""Cost of scoring with the full ensemble, per event, at micro-batch sizes 512 and 1.

    .venv/bin/python scripts/score_cost.py [--model-dir DIR] [--repeat N]

Uses the active model of --model-dir if given, else fits a bundle (all default detectors)
on synthetic data shaped like the real features. Prints JSON: microseconds per event for
ModelBundle.score (every detector + the stacked ensemble), and per detector.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.lifecycle import registry  # noqa: E402
from models.lifecycle.training import fit_bundle  # noqa: E402
from tables.features import ALL_FEATURES  # noqa: E402


def synthetic_bundle():
    rng = np.random.default_rng(0)
    n = 20_000
    X = np.abs(rng.normal(size=(n, len(ALL_FEATURES))))
    y = (rng.random(n) < 0.02).astype(int)
    X[y == 1, 0] += 3.0
    X[y == 1, 9] += 2.0
    return fit_bundle(X, y, "score-cost"), X


def per_event_us(fn, X: np.ndarray, batch: int, repeat: int) -> float:
    batches = [X[i : i + batch] for i in range(0, batch * repeat, batch)]
    fn(batches[0])  # warm-up
    started = time.perf_counter()
    for b in batches:
        fn(b)
    return (time.perf_counter() - started) / (batch * len(batches)) * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument("--repeat", type=int, default=200, help="batches timed per size")
    args = parser.parse_args()
    if args.model_dir:
        bundle = registry.load(args.model_dir)
        rng = np.random.default_rng(0)
        X = np.abs(rng.normal(size=(512 * args.repeat, len(bundle.feature_names))))
    else:
        bundle, X = synthetic_bundle()
    X = np.resize(X, (512 * args.repeat, X.shape[1]))
    result = {"model_version": bundle.version, "detectors": list(bundle.detectors)}
    for batch in (512, 1):
        entry = {"ensemble_us_per_event": per_event_us(bundle.score, X, batch, args.repeat)}
        for name, det in bundle.detectors.items():
            cols = bundle._columns.get(name)
            Xd = X if cols is None else X[:, cols]
            entry[f"{name}_us_per_event"] = per_event_us(det.score, Xd, batch, args.repeat)
        result[f"batch_{batch}"] = {k: round(v, 2) for k, v in entry.items()}
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
