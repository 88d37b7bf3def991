"""The evaluation protocol and metrics of the Fraud Detection Handbook (see docs/evaluation.md).

A pure library: it receives DataFrames with the simulator's columns (TRANSACTION_ID,
TX_DATETIME, CUSTOMER_ID, TERMINAL_ID, TX_AMOUNT, TX_TIME_SECONDS, TX_TIME_DAYS, TX_FRAUD,
TX_FRAUD_SCENARIO) and score arrays; it trains nothing and computes no features.

Days are always derived from TX_DATETIME (calendar days), never from TX_TIME_DAYS: a file
from elsewhere may start on another date, and TX_TIME_DAYS may be missing.

Scores and labels passed next to a DataFrame are aligned with its rows by position.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.metrics import average_precision_score, roc_auc_score

__all__ = [
    "DegenerateTestSetWarning",
    "LABEL_COLUMNS",
    "Split",
    "card_precision_at_k",
    "metrics",
    "score_columns_to_metrics",
    "split_masks",
    "test_set_mask",
    "without_labels_from",
]

LABEL_COLUMNS = ("TX_FRAUD", "TX_FRAUD_SCENARIO")
_ONE_DAY = np.timedelta64(1, "D")


class DegenerateTestSetWarning(UserWarning):
    """The test set cannot support a metric (empty, or only one class)."""


@dataclass(frozen=True)
class Split:
    """The book's Chapter 3 split: train, then a label-delay gap, then test (all whole days).

    `train_start` must be a (timezone-naive) midnight; strings and dates are accepted and
    converted to a pd.Timestamp. All `*_end` bounds are exclusive.
    """

    train_start: pd.Timestamp
    train_days: int = 7
    delay_days: int = 7
    test_days: int = 7

    def __post_init__(self) -> None:
        start = pd.Timestamp(self.train_start)
        if start.tz is not None:
            raise ValueError(f"train_start must be timezone-naive, got {start}")
        # Windows are whole calendar days; a mid-day start would silently shift every window.
        if start != start.normalize():
            raise ValueError(f"train_start must be a midnight, got {start}")
        for name in ("train_days", "delay_days", "test_days"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise TypeError(f"{name} must be an int, got {type(value).__name__}")
            minimum = 0 if name == "delay_days" else 1
            if value < minimum:
                raise ValueError(f"{name} must be >= {minimum}, got {value}")
        object.__setattr__(self, "train_start", start)

    @property
    def train_end(self) -> pd.Timestamp:
        """First instant after the training window."""
        return self.train_start + pd.Timedelta(days=self.train_days)

    @property
    def test_start(self) -> pd.Timestamp:
        """First instant of the test window (after the delay window)."""
        return self.train_end + pd.Timedelta(days=self.delay_days)

    @property
    def test_end(self) -> pd.Timestamp:
        """First instant after the test window."""
        return self.test_start + pd.Timedelta(days=self.test_days)


# --------------------------------------------------------------------------- helpers


def _datetimes(df: pd.DataFrame) -> np.ndarray:
    """TX_DATETIME as naive datetime64[ns] (pandas 3 may infer s/us units; unify them)."""
    col = df["TX_DATETIME"]
    if not pd.api.types.is_datetime64_any_dtype(col):
        col = pd.to_datetime(col)  # e.g. a CSV read without parse_dates
    if isinstance(col.dtype, pd.DatetimeTZDtype):
        col = col.dt.tz_localize(None)  # keep local wall-clock days
    values = col.to_numpy(dtype="datetime64[ns]")
    if np.isnat(values).any():
        raise ValueError("TX_DATETIME has missing values")
    return values


def _day_index(df: pd.DataFrame, origin: pd.Timestamp) -> np.ndarray:
    """Whole calendar days of each row since the midnight `origin` (negative before it)."""
    # Floor division of timedelta64 floors towards -inf, so 23:59 the day before is -1.
    return (_datetimes(df) - origin.to_datetime64().astype("datetime64[ns]")) // _ONE_DAY


def _as_float_array(values: ArrayLike, n: int, what: str) -> np.ndarray:
    """A 1-D float array of length n, or a clear error (positional alignment only)."""
    series = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values).ravel())
    # to_numeric + na_value: nullable Int64/Float64/boolean columns become plain floats.
    arr = pd.to_numeric(series, errors="raise").to_numpy(dtype="float64", na_value=np.nan)
    if arr.shape[0] != n:
        raise ValueError(f"{what}: expected {n} values, got {arr.shape[0]}")
    if np.isnan(arr).any():
        raise ValueError(f"{what}: contains missing values (NaN / NA)")
    return arr


def _labels(values: ArrayLike, n: int) -> np.ndarray:
    """0/1 labels; hidden labels (NaN, see without_labels_from) cannot be scored against."""
    arr = _as_float_array(values, n, "labels")
    if not np.isin(arr, (0.0, 1.0)).all():
        raise ValueError("labels: expected only 0 and 1")
    return arr


# --------------------------------------------------------------------------- protocol


def split_masks(df: pd.DataFrame, split: Split) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks over df rows: (training window, test window), by TX_DATETIME.

    Training = [train_start, train_end), test = [test_start, test_end). The test mask is the
    whole test window; the book's test set drops known-compromised cards: see test_set_mask.
    """
    day = _day_index(df, split.train_start)
    train = (day >= 0) & (day < split.train_days)
    test_day = day - (split.train_days + split.delay_days)
    test = (test_day >= 0) & (test_day < split.test_days)
    return train, test


def test_set_mask(df: pd.DataFrame, split: Split) -> np.ndarray:
    """Boolean mask over df rows: the book's test set (test window minus known-compromised cards).

    Rule (docs/evaluation.md): "a card already known to be compromised is dropped from the
    test set. Known = it had a fraud in the training window; then, for test day i (0..6),
    also every card with a fraud on day (train start + 7 + i − 1)". With d = days since
    train_start and T = train_days (in place of the 7), a fraud on day d makes its card known
    from test day max(0, d − T + 1) onwards (the known set only grows), for frauds on days
    0 .. T + test_days − 2. Like the book, the knowledge day does not depend on delay_days.
    With the defaults that is days 0..12, all before the test window, so no test-window label
    decides membership. A TX_FRAUD of NaN (hidden label) counts as not known.

    On the published data with train_start 2018-07-25 this gives 58,264 rows.
    """
    day = _day_index(df, split.train_start)
    cards = df["CUSTOMER_ID"].to_numpy()
    fraud = (df["TX_FRAUD"] == 1).fillna(False).to_numpy(dtype=bool)

    last_informative_day = split.train_days + split.test_days - 2
    informative = fraud & (day >= 0) & (day <= last_informative_day)
    # Training-window frauds are known from test day 0; day T-1+i frauds from test day i.
    known_from = np.maximum(day[informative] - split.train_days + 1, 0)
    first_known_day = pd.Series(known_from).groupby(cards[informative]).min()

    test_day = day - (split.train_days + split.delay_days)
    in_test = (test_day >= 0) & (test_day < split.test_days)
    mask = in_test.copy()
    idx = np.flatnonzero(in_test)
    # Cards never known map to NaN, and NaN <= x is False: they stay in.
    card_known_from = pd.Series(cards[idx]).map(first_known_day).to_numpy(dtype="float64")
    mask[idx] = ~(card_known_from <= test_day[idx])
    return mask


# Its name starts with "test_": stop pytest from collecting it where it is imported by name.
test_set_mask.__test__ = False  # type: ignore[attr-defined]


def without_labels_from(df: pd.DataFrame, day: Any) -> pd.DataFrame:
    """Copy of df whose labels dated on or after `day` (floored to midnight) are hidden.

    Hidden means NaN in TX_FRAUD and TX_FRAUD_SCENARIO (both become float64), NOT 0: a
    hidden label is "unknown", which must differ from "genuine". NaN is also contagious, so
    code that wrongly reads a hidden label yields NaN features/scores instead of silently
    treating it as genuine. Used by the no-leakage test: scores in the test window must not
    change when every label from the first test day on is hidden.
    """
    cutoff = pd.Timestamp(day)
    if cutoff.tz is not None:
        cutoff = cutoff.tz_localize(None)
    cutoff = cutoff.normalize()
    hidden = _datetimes(df) >= cutoff.to_datetime64().astype("datetime64[ns]")
    out = df.copy()
    for col in LABEL_COLUMNS:
        if col not in out.columns:
            continue
        values = pd.to_numeric(out[col]).to_numpy(dtype="float64", na_value=np.nan).copy()
        values[hidden] = np.nan
        out[col] = values
    return out


# --------------------------------------------------------------------------- metrics


def card_precision_at_k(
    df_test: pd.DataFrame, scores: ArrayLike, k: int = 100
) -> tuple[float, list[float]]:
    """Card precision@k: (mean over test days, per-day values in day order).

    For each calendar day present in df_test (by TX_DATETIME): each card's max score and
    max label (TX_FRAUD) that day; cards detected on earlier days are dropped; cards are
    ranked by score (ties: lower CUSTOMER_ID first, for determinism); the day's value is
    the number of compromised cards among the top k divided by k (always k, even when
    fewer cards are left, like the book). A card counts as detected once it was a
    compromised card in some day's top k. Empty df_test gives (NaN, []).
    """
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    n = len(df_test)
    score = _as_float_array(scores, n, "scores")
    label = _labels(df_test["TX_FRAUD"], n)
    if n == 0:
        return math.nan, []

    per_card = (
        pd.DataFrame(
            {
                "day": _datetimes(df_test).astype("datetime64[D]"),
                "card": df_test["CUSTOMER_ID"].to_numpy(),
                "score": score,
                "label": label,
            }
        )
        .groupby(["day", "card"], sort=True)
        .max()
        .reset_index()
    )

    # to_numpy(): text card ids are a pandas string array, which numpy has no dtype for.
    detected: np.ndarray = np.empty(0, dtype=per_card["card"].to_numpy().dtype)
    per_day: list[float] = []
    # Sequential over days (at most a handful): each day depends on earlier detections.
    for _, cards in per_card.groupby("day", sort=True):
        cards = cards[~cards["card"].isin(detected)]
        card_ids = cards["card"].to_numpy()
        # lexsort: last key is primary -> score descending, then card id ascending.
        top = np.lexsort((card_ids, -cards["score"].to_numpy()))[:k]
        hits = card_ids[top][cards["label"].to_numpy()[top] == 1]
        per_day.append(len(hits) / k)
        detected = np.concatenate([detected, hits])
    return float(np.mean(per_day)), per_day


def metrics(y_true: ArrayLike, scores: ArrayLike, df_test: pd.DataFrame) -> dict[str, float]:
    """AUC ROC, average precision and CP@100 of `scores` on the test set df_test.

    y_true and scores are aligned with df_test's rows by position; y_true is the label used
    everywhere (df_test only supplies CUSTOMER_ID and TX_DATETIME for CP@100). A test set
    with a single class gets NaN for AUC ROC and AP plus a DegenerateTestSetWarning (sklearn
    would raise or return a meaningless value); an empty one gets NaN everywhere.
    """
    n = len(df_test)
    label = _labels(y_true, n)
    score = _as_float_array(scores, n, "scores")
    nan = math.nan
    if n == 0:
        warnings.warn("empty test set: all metrics are NaN", DegenerateTestSetWarning, stacklevel=2)
        return {"auc_roc": nan, "average_precision": nan, "card_precision_at_100": nan}

    if np.unique(label).size < 2:
        only = "fraud" if label[0] == 1 else "genuine"
        warnings.warn(
            f"test set has only {only} transactions ({n} rows): AUC ROC and average "
            "precision are undefined (NaN)",
            DegenerateTestSetWarning,
            stacklevel=2,
        )
        auc = ap = nan
    else:
        auc = float(roc_auc_score(label, score))
        ap = float(average_precision_score(label, score))

    # CP@100 is well defined with one class; score it against y_true, not df_test.TX_FRAUD.
    cp_frame = pd.DataFrame(
        {
            "TX_DATETIME": df_test["TX_DATETIME"].to_numpy(),
            "CUSTOMER_ID": df_test["CUSTOMER_ID"].to_numpy(),
            "TX_FRAUD": label,
        }
    )
    cp, _ = card_precision_at_k(cp_frame, score, k=100)
    return {"auc_roc": auc, "average_precision": ap, "card_precision_at_100": cp}


def score_columns_to_metrics(
    df_test: pd.DataFrame, score_frame: pd.DataFrame | Mapping[str, ArrayLike]
) -> dict[str, dict[str, float]]:
    """metrics() for every score column of score_frame, labels from df_test.TX_FRAUD.

    If both frames have TRANSACTION_ID, rows are matched on it (the `aegis evaluate` output
    file: TRANSACTION_ID plus one score column per model) and every df_test transaction must
    have a score; otherwise they are aligned by position. Every column other than
    TRANSACTION_ID is a score column.
    """
    frame = pd.DataFrame(score_frame) if not isinstance(score_frame, pd.DataFrame) else score_frame
    score_cols = [c for c in frame.columns if c != "TRANSACTION_ID"]
    if "TRANSACTION_ID" in frame.columns and "TRANSACTION_ID" in df_test.columns:
        ids = frame["TRANSACTION_ID"]
        if ids.duplicated().any():
            raise ValueError("score_frame: duplicated TRANSACTION_ID")
        found = np.isin(df_test["TRANSACTION_ID"].to_numpy(), ids.to_numpy())
        if not found.all():
            raise ValueError(f"score_frame: no scores for {int((~found).sum())} test transactions")
        aligned = frame.set_index("TRANSACTION_ID").reindex(df_test["TRANSACTION_ID"].to_numpy())
    else:
        if len(frame) != len(df_test):
            raise ValueError(
                f"score_frame has {len(frame)} rows, df_test {len(df_test)} (no TRANSACTION_ID "
                "to match on)"
            )
        aligned = frame
    y_true = df_test["TX_FRAUD"]
    return {str(col): metrics(y_true, aligned[col].to_numpy(), df_test) for col in score_cols}
