"""Cost of scoring with the full ensemble, per event, at micro-batch sizes 512 and 1.

    .venv/bin/python scripts/score_cost.py [--model-dir DIR] [--config FILE] [--repeat N]

Uses the active model of --model-dir if given, else fits a bundle (all default detectors)
on synthetic data with the features of the config (--config, AEGIS_CONFIG, else the
default preset; numeric features only). Prints JSON: microseconds per event for
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

from aegis_app.core.config import Config  # noqa: E402
from aegis_app.core.settings import Settings  # noqa: E402
from models.lifecycle import registry  # noqa: E402
from models.lifecycle.training import categorical_features, fit_bundle  # noqa: E402


def synthetic_bundle(config: Config):
    if categorical_features(config):
        raise SystemExit("synthetic data has numbers only: give --model-dir for this config")
    rng = np.random.default_rng(0)
    n = 20_000
    X = np.abs(rng.normal(size=(n, len(config.feature_names))))
    y = (rng.random(n) < 0.02).astype(int)
    X[y == 1, 0] += 3.0  # two informative columns: the supervised detectors have a signal
    X[y == 1, X.shape[1] // 2] += 2.0
    return fit_bundle(X, y, "score-cost", config=config), X


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
    parser.add_argument("--config", type=Path, help="schema and features config (AEGIS_CONFIG)")
    parser.add_argument("--repeat", type=int, default=200, help="batches timed per size")
    args = parser.parse_args()
    config = Settings.from_env(config=args.config).load_config()
    if args.model_dir:
        bundle = registry.load(args.model_dir, config=config)
        rng = np.random.default_rng(0)
        X = np.abs(rng.normal(size=(512 * args.repeat, len(bundle.feature_names))))
    else:
        bundle, X = synthetic_bundle(config)
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
