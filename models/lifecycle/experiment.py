"""`aegis evaluate` and `aegis train`: the Handbook protocol and model training on a file.

Both compute features with tables.batch (the stream's own feature code) on the rows that
can affect the window (its 30 + delay days of history), then fit with models.lifecycle.training.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from models.lifecycle import registry
from models.lifecycle.drift import bundle_reference
from models.lifecycle.evaluation import Split, score_columns_to_metrics, split_masks, test_set_mask
from models.lifecycle.training import Window, fit_bundle, history_start, known_labels
from tables.batch import compute_features
from tables.features import ALL_FEATURES

log = logging.getLogger(__name__)


def _rows_between(df: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    when = pd.to_datetime(df["TX_DATETIME"])
    return df.loc[(when >= start) & (when < end)].reset_index(drop=True)


def evaluate(
    df: pd.DataFrame,
    split: Split,
    scores_out: Path | None = None,
    progress: bool = False,
    feature_names: list[str] | None = None,
) -> dict:
    """Train on the split's training window, score its test window, return the metrics.

    Writes `scores_out` (TRANSACTION_ID, one column per model, `ensemble`) for every
    transaction of the test window; metrics are computed on the test set (the window
    minus cards already known to be compromised, evaluation.md).
    """
    names = feature_names or list(ALL_FEATURES)
    rows = _rows_between(df, history_start(split.train_start, split.delay_days), split.test_end)
    features = compute_features(rows, split.delay_days, progress=progress)
    train_mask, test_mask = split_masks(rows, split)
    # Training happens at the start of the test window: only labels known by then.
    y_all = known_labels(rows, split.test_start, split.delay_days)
    train_known = train_mask & ~np.isnan(y_all)
    if not train_known.any():
        raise ValueError("no labelled transactions in the training window")
    bundle = fit_bundle(
        features.loc[train_known, names].to_numpy(),
        y_all[train_known].astype(int),
        version="evaluation",
        feature_names=names,
        times=rows.loc[train_known, "TX_DATETIME"].to_numpy(),
        cards=rows.loc[train_known, "CUSTOMER_ID"].to_numpy(),
        quiet=not progress,
    )
    test_rows = rows.loc[test_mask].reset_index(drop=True)
    scores = bundle.score(features.loc[test_mask, names].to_numpy())
    frame = pd.DataFrame({"TRANSACTION_ID": test_rows["TRANSACTION_ID"].to_numpy()})
    for name, values in scores.items():
        frame[name] = values
    if scores_out is not None:
        frame.to_csv(scores_out, index=False)
    # The rule needs the frauds before the test window, so it reads all rows.
    in_test_set = test_set_mask(rows, split)[test_mask]
    labelled = test_rows.loc[in_test_set].reset_index(drop=True)
    labelled["TX_FRAUD"] = pd.to_numeric(labelled["TX_FRAUD"], errors="coerce")
    if labelled["TX_FRAUD"].isna().any():
        # Scores are still written; without ground truth there is nothing to measure.
        log.warning("test-set transactions without labels: no metrics")
        result = None
    else:
        result = score_columns_to_metrics(labelled, frame.loc[in_test_set].reset_index(drop=True))
    return {
        "split": {
            "train_start": str(split.train_start.date()),
            "train_end_exclusive": str(split.train_end.date()),
            "test_start": str(split.test_start.date()),
            "test_end_exclusive": str(split.test_end.date()),
        },
        "rows": {
            "train": int(train_mask.sum()),
            "train_frauds": int(np.nansum(y_all[train_known])),
            "test_window": int(test_mask.sum()),
            "test_set": int(in_test_set.sum()),
        },
        "metrics": result,
        "model": {
            "ensemble": bundle.ensemble_method,
            "thresholds": bundle.thresholds,
            "detector_features": bundle.detector_features,
            "holdout_metrics": bundle.metadata.get("holdout_metrics"),
        },
    }


def train(
    df: pd.DataFrame,
    model_dir: Path,
    window: Window,
    delay_days: int,
    progress: bool = False,
    activate: bool = True,
) -> registry.Manifest:
    """Fit a bundle on `window` with the labels known at its end + delay; register it."""
    rows = _rows_between(df, history_start(window.start, delay_days), window.end)
    features = compute_features(rows, delay_days, progress=progress)
    in_window = window.mask(rows["TX_DATETIME"])
    labels = known_labels(rows, window.end + pd.Timedelta(days=delay_days), delay_days)
    usable = in_window & ~np.isnan(labels)
    X = features.loc[in_window, list(ALL_FEATURES)].to_numpy()
    y = None
    if usable.sum() == in_window.sum() and in_window.any():
        y = labels[in_window].astype(int)
    else:
        log.warning("labels missing in the training window: training unsupervised models only")
    bundle = fit_bundle(
        X,
        y,
        version=registry.new_version_id(model_dir),
        times=rows.loc[in_window, "TX_DATETIME"].to_numpy(),
        cards=rows.loc[in_window, "CUSTOMER_ID"].to_numpy(),
        quiet=not progress,
    )
    info = {
        **window.describe(),
        "rows": int(in_window.sum()),
        "frauds": int(np.nansum(labels[in_window])),
    }
    # The drift reference: the training window's features and the bundle's scores on them.
    drift_reference = bundle_reference(bundle, X)
    return registry.save(
        bundle,
        model_dir,
        training_window=info,
        activate=activate,
        drift_reference=drift_reference,
    )


def dumps(result: dict) -> str:
    return json.dumps(result, indent=2, default=float)
