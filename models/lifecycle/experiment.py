"""`aegis evaluate` and `aegis train`: the Handbook protocol and model training on a file.

Both compute features on the rows that can affect the window (its warm-up of history), then
fit with models.lifecycle.training. The file's records are normalised by the config's
source reader (aegis_app.core.source) and their features come from the feature engine
(tables.engine), for every config, the Handbook preset included; the protocol reads them
through the simulator's column names (:func:`protocol_view`). Without a config, the one
the process runs (Settings.load_config(): AEGIS_CONFIG, else the default preset).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from aegis_app.core.config import Config
from aegis_app.core.source import SourceReader
from models.lifecycle import registry
from models.lifecycle.drift import bundle_reference
from models.lifecycle.evaluation import Split, score_columns_to_metrics, split_masks, test_set_mask
from models.lifecycle.model_config import running_config
from models.lifecycle.training import Window, fit_bundle, history_start, known_labels
from tables.engine import compute_features

log = logging.getLogger(__name__)


def protocol_view(normalised: pd.DataFrame) -> pd.DataFrame:
    """Normalised records with the columns the protocol and training read added under the
    simulator's names (time as naive UTC datetimes)."""
    view = normalised.copy()
    # Ids as plain objects: numpy has no dtype for pandas' string arrays.
    view["TRANSACTION_ID"] = normalised["transaction_id"].astype(object)
    view["TX_DATETIME"] = pd.to_datetime(normalised["ts"].to_numpy(dtype="int64"), unit="s")
    view["CUSTOMER_ID"] = normalised["card"].astype(object)
    view["TERMINAL_ID"] = normalised["merchant"].astype(object)
    view["TX_AMOUNT"] = normalised["amount"]
    view["TX_FRAUD"] = normalised["label"]
    return view


# The columns protocol_view adds: a frame holding them all is a view already.
VIEW_COLUMNS = ("transaction_id", "card", "merchant", "amount", "ts", "label", "TX_DATETIME")


def prepare(df: pd.DataFrame, config: Config) -> pd.DataFrame:
    """The protocol's view of `df`: returned as is when it is one (aegis_app.cli.datafiles
    reads files into it), else `df` holds the user's records in the config's schema and is
    normalised by its source reader; rows that do not fit are skipped, with a warning."""
    if all(column in df.columns for column in VIEW_COLUMNS):
        return df
    normalised, bad = SourceReader(config).frame(df)
    if bad:
        line, reason = bad[0]
        log.warning("%d row(s) do not fit the config, skipped (row %d: %s)", len(bad), line, reason)
    return protocol_view(normalised)


def _rows_between(df: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    when = pd.to_datetime(df["TX_DATETIME"])
    return df.loc[(when >= start) & (when < end)].reset_index(drop=True)


def evaluate(
    df: pd.DataFrame,
    split: Split,
    scores_out: Path | None = None,
    progress: bool = False,
    config: Config | None = None,
) -> dict:
    """Train on the split's training window, score its test window, return the metrics.

    `df`: the user's records or their :func:`protocol_view` (see :func:`prepare`). Writes
    `scores_out` (the config's transaction id column, one column per model, `ensemble`)
    for every transaction of the test window; metrics are computed on the test set (the
    window minus cards already known to be compromised, evaluation.md).
    """
    config = config if config is not None else running_config()
    df = prepare(df, config)
    names = list(config.feature_names)
    rows = _rows_between(df, history_start(split.train_start, config), split.test_end)
    features = compute_features(rows, config, progress=progress)
    train_mask, test_mask = split_masks(rows, split)
    if not train_mask.any() or not test_mask.any():
        raise ValueError(_split_outside(df, split))
    # Training happens at the start of the test window: only labels known by then.
    y_all = known_labels(rows, split.test_start, split.delay_days)
    train_known = train_mask & ~np.isnan(y_all)
    if not train_known.any():
        raise ValueError("no labelled transactions in the training window")
    bundle = fit_bundle(
        features.loc[train_known, names],
        y_all[train_known].astype(int),
        version="evaluation",
        feature_names=names,
        times=rows.loc[train_known, "TX_DATETIME"].to_numpy(),
        cards=rows.loc[train_known, "CUSTOMER_ID"].to_numpy(),
        quiet=not progress,
        config=config,
    )
    test_rows = rows.loc[test_mask].reset_index(drop=True)
    scores = bundle.score(bundle.matrix(features.loc[test_mask, names]))
    frame = pd.DataFrame({"TRANSACTION_ID": test_rows["TRANSACTION_ID"].to_numpy()})
    for name, values in scores.items():
        frame[name] = values
    if scores_out is not None:
        id_column = config.source.transaction_id
        frame.rename(columns={"TRANSACTION_ID": id_column}).to_csv(scores_out, index=False)
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
    config: Config | None = None,
) -> registry.Manifest:
    """Fit a bundle on `window` with the labels known at its end + delay; register it.
    `df`: the user's records or their :func:`protocol_view` (see :func:`prepare`); the
    features are the config's (default: the one the process runs)."""
    config = config if config is not None else running_config()
    df = prepare(df, config)
    rows = _rows_between(df, history_start(window.start, config), window.end)
    in_window = window.mask(rows["TX_DATETIME"])
    if not in_window.any():
        raise ValueError(_too_short(df, window, delay_days))
    features = compute_features(rows, config, progress=progress)
    labels = known_labels(rows, window.end + pd.Timedelta(days=delay_days), delay_days)
    usable = in_window & ~np.isnan(labels)
    names = list(config.feature_names)
    X = features.loc[in_window, names]
    y = None
    if usable.sum() == in_window.sum() and in_window.any():
        y = labels[in_window].astype(int)
    else:
        log.warning("labels missing in the training window: training unsupervised models only")
    bundle = fit_bundle(
        X,
        y,
        version=registry.new_version_id(model_dir),
        feature_names=names,
        times=rows.loc[in_window, "TX_DATETIME"].to_numpy(),
        cards=rows.loc[in_window, "CUSTOMER_ID"].to_numpy(),
        quiet=not progress,
        config=config,
    )
    info = {
        **window.describe(),
        "rows": int(in_window.sum()),
        "frauds": int(np.nansum(labels[in_window])),
    }
    # The drift reference: the training window's features and the bundle's scores on them.
    drift_reference = bundle_reference(bundle, bundle.matrix(features.loc[in_window, names]))
    return registry.save(
        bundle,
        model_dir,
        training_window=info,
        activate=activate,
        drift_reference=drift_reference,
    )


def _too_short(df: pd.DataFrame, window: Window, delay_days: int) -> str:
    """Why a training window holds no transaction, in days the user can act on."""
    if df.empty:
        return "the file holds no transactions"
    when = pd.to_datetime(df["TX_DATETIME"])
    first, last = when.min().normalize(), when.max().normalize()
    held = (last - first).days + 1
    return (
        f"no transactions in the training window {window.start.date()} .. "
        f"{(window.end - pd.Timedelta(days=1)).date()}: the file holds {held} day(s) "
        f"({first.date()} .. {last.date()}), and training on {window.days} day(s) whose "
        f"labels are known {delay_days} day(s) later needs at least {window.days + delay_days}"
        " (choose --train-days / --delay-days, or --train-start inside the file)"
    )


def _split_outside(df: pd.DataFrame, split: Split) -> str:
    """Why a split finds no training or no test rows, in days."""
    if df.empty:
        return "the file holds no transactions"
    when = pd.to_datetime(df["TX_DATETIME"])
    first, last = when.min().normalize(), when.max().normalize()
    return (
        f"the split needs transactions from {split.train_start.date()} to "
        f"{(split.test_end - pd.Timedelta(days=1)).date()} (train {split.train_days}, delay "
        f"{split.delay_days}, test {split.test_days} days); the file holds "
        f"{(last - first).days + 1} day(s), {first.date()} .. {last.date()}"
    )


def dumps(result: dict) -> str:
    return json.dumps(result, indent=2, default=float)
