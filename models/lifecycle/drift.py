"""Drift measurement: the population stability index (PSI) of live data against training.

At training time `reference_profile` summarises the training window: for every feature, and
for the ensemble score, quantile bin edges of the training values and the training share of
each bin (plus the share of missing values). It is stored in the model's manifest
(`Manifest.drift_reference`). Later `drift_report` bins a window of live rows with the same
edges and compares shares:

    PSI = sum over bins of (live share - training share) * ln(live share / training share)

Usual reading: below 0.1 stable, 0.1 to 0.25 a moderate shift, above 0.25 a significant
shift (the default alert threshold).

Binning rules, shared by training and live data so both land in the same bins:
- Edges are quantiles of the finite training values, de-duplicated: a 0/1 flag or a
  constant gets one or two bins instead of ten empty ones.
- Bins are right-closed, (edge[i-1], edge[i]], with open ends at -inf and +inf, so values
  outside the training range (and +/-inf) fall in the outermost bins.
- NaN (and a feature missing from a live row) counts in its own "missing" bin.
- Empty bins are floored at a small share so the PSI stays finite.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

PROFILE_FORMAT = 1
PSI_MODERATE = 0.1
PSI_SIGNIFICANT = 0.25
DEFAULT_THRESHOLD = PSI_SIGNIFICANT
# Share given to an empty bin: without it one empty bin makes the PSI infinite.
EMPTY_BIN_SHARE = 1e-4
# Below this many live rows a window's PSI is mostly sampling noise (for n rows and B bins
# it averages about (B - 1) / n with no drift at all): reported, never alerted. From 200
# rows a chance PSI of 0.25 over ten bins is very unlikely (chi-square approximation).
MIN_ROWS = 200
SCORE = "score"


def _bin_edges(values: np.ndarray, bins: int) -> list[float]:
    """Inner cut points: quantiles of the finite values, each distinct value at most once."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return []
    levels = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    # inverted_cdf picks observed values, so ties (flags, counts) give clean edges.
    cuts = np.quantile(finite, levels, method="inverted_cdf")
    return [float(c) for c in np.unique(cuts)]


def _bin_counts(edges: Sequence[float], values: np.ndarray) -> tuple[np.ndarray, int]:
    """Count per bin (len(edges) + 1 bins) and the number of missing (NaN) values."""
    values = np.asarray(values, dtype=np.float64).ravel()
    missing = np.isnan(values)
    index = np.searchsorted(np.asarray(edges, dtype=np.float64), values[~missing], side="left")
    counts = np.bincount(index, minlength=len(edges) + 1)
    return counts, int(missing.sum())


def profile_entry(values: np.ndarray, bins: int = 10) -> dict[str, Any]:
    """Edges and training shares of one variable (see the module docstring)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    edges = _bin_edges(values, bins)
    counts, missing = _bin_counts(edges, values)
    n = int(values.size)
    total = max(n, 1)
    return {
        "edges": edges,
        "shares": [float(c) / total for c in counts],
        "missing_share": missing / total,
        "n": n,
    }


# Calendar features (the config's hour, weekend, night and day-of-week kinds): their mix in a
# window depends on which hours and days it covers (a one-day window is all weekend or all
# weekdays, a window that starts at 9:00 lacks the night), not on how cards and merchants
# behave. Reported, ranked last, never the cause of an alert. A profile names them
# ("calendar"); profiles written before it did know only the Handbook's weekend flag.
CALENDAR_KINDS = frozenset({"hour", "weekend", "night", "day_of_week"})
LEGACY_CALENDAR_FEATURES = ("TX_DURING_WEEKEND",)


def calendar_features(config_description: Mapping[str, Any] | None) -> list[str]:
    """The calendar features of a model's recorded config (describe_config's shape)."""
    if not config_description:
        return list(LEGACY_CALENDAR_FEATURES)
    return [f["name"] for f in config_description["features"] if f.get("kind") in CALENDAR_KINDS]


def reference_profile(
    X: np.ndarray,
    feature_names: list[str],
    scores: np.ndarray,
    bins: int = 10,
    calendar: Sequence[str] = LEGACY_CALENDAR_FEATURES,
) -> dict[str, Any]:
    """The drift reference of a training window (JSON-ready, for the manifest).

    X holds one column per name in `feature_names`; `scores` are the bundle's ensemble
    scores on the same rows; `calendar` names the calendar features among them.
    """
    if bins < 2:
        raise ValueError("bins must be at least 2")
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != len(feature_names):
        raise ValueError(f"X has shape {X.shape} for {len(feature_names)} feature names")
    return {
        "format": PROFILE_FORMAT,
        "method": "psi-quantile-bins",
        "bins": int(bins),
        "n": int(X.shape[0]),
        "features": {name: profile_entry(X[:, j], bins) for j, name in enumerate(feature_names)},
        "calendar": [name for name in calendar if name in feature_names],
        SCORE: profile_entry(np.asarray(scores, dtype=np.float64), bins),
    }


def bundle_reference(bundle, X: np.ndarray) -> dict[str, Any]:
    """The reference of a fitted bundle: its training rows `X` (in the bundle's feature
    order) and its ensemble scores on them."""
    calendar = calendar_features((bundle.metadata or {}).get("config"))
    return reference_profile(
        X, list(bundle.feature_names), bundle.score(X)["ensemble"], calendar=calendar
    )


def psi(reference_entry: Mapping[str, Any], values: np.ndarray | Sequence[float]) -> float:
    """Population stability index of `values` against one reference entry.

    Raises ValueError on no values: an empty window has no distribution to compare.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError("no values to compare with the reference")
    edges = reference_entry["edges"]
    counts, missing = _bin_counts(edges, values)
    live = np.append(counts, missing) / values.size
    expected = np.append(
        np.asarray(reference_entry["shares"], dtype=np.float64),
        float(reference_entry.get("missing_share") or 0.0),
    )
    if expected.shape != live.shape:
        raise ValueError(f"reference has {expected.size - 1} bins for {len(edges)} edges")
    live = np.maximum(live, EMPTY_BIN_SHARE)
    expected = np.maximum(expected, EMPTY_BIN_SHARE)
    return float(np.sum((live - expected) * np.log(live / expected)))


def level(value: float | None) -> str:
    """'stable', 'moderate' or 'significant' (None: 'unknown')."""
    if value is None:
        return "unknown"
    if value >= PSI_SIGNIFICANT:
        return "significant"
    if value >= PSI_MODERATE:
        return "moderate"
    return "stable"


def _feature_columns(
    rows: Sequence[Mapping[str, Any]] | pd.DataFrame, names: Sequence[str]
) -> dict[str, np.ndarray]:
    """One float column per name; absent or non-numeric values become NaN (missing)."""
    if isinstance(rows, pd.DataFrame):
        frame = rows
    else:
        frame = pd.DataFrame.from_records(list(rows), columns=list(names))
    columns = {}
    for name in names:
        if name in frame.columns:
            column = pd.to_numeric(frame[name], errors="coerce")
            columns[name] = column.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            columns[name] = np.full(len(frame), np.nan)
    return columns


def drift_report(
    reference: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]] | pd.DataFrame,
    scores: np.ndarray | Sequence[float] | None,
    threshold: float = DEFAULT_THRESHOLD,
    top: int = 5,
    min_rows: int = MIN_ROWS,
) -> dict[str, Any]:
    """PSI of a window of live rows (feature dicts or a DataFrame) and of their scores.

    `scores` may be shorter than `rows` (for instance only the rows the reference's model
    scored) or None. The window alerts when the score PSI or the largest feature PSI
    reaches `threshold`, and only with at least `min_rows` rows behind that PSI.
    """
    names = list(reference.get("features", {}))
    calendar = frozenset(reference.get("calendar", LEGACY_CALENDAR_FEATURES))
    columns = _feature_columns(rows, names)
    n = len(next(iter(columns.values()))) if columns else len(rows)
    feature_psi: dict[str, float] = {}
    if n:
        feature_psi = {name: psi(reference["features"][name], columns[name]) for name in names}
    score_values = np.asarray([] if scores is None else scores, dtype=np.float64).ravel()
    n_scores = int(score_values.size)
    score_psi = psi(reference[SCORE], score_values) if n_scores and SCORE in reference else None
    ranked = sorted(
        feature_psi.items(),
        key=lambda item: (item[0] not in calendar, item[1]),
        reverse=True,
    )
    behavioural = [item for item in ranked if item[0] not in calendar]
    max_feature, max_psi = behavioural[0] if behavioural else (None, None)
    feature_alert = max_psi is not None and n >= min_rows and max_psi >= threshold
    score_alert = score_psi is not None and n_scores >= min_rows and score_psi >= threshold
    worst = max((v for v in (score_psi, max_psi) if v is not None), default=None)
    return {
        "n": int(n),
        "n_scores": n_scores,
        "score_psi": score_psi,
        "feature_psi": feature_psi,
        "max_feature": max_feature,
        "max_feature_psi": max_psi,
        "top_features": [{"feature": k, "psi": v} for k, v in ranked[: max(top, 0)]],
        "threshold": float(threshold),
        "level": level(worst),
        "enough_data": n >= min_rows,
        "alert": bool(feature_alert or score_alert),
    }
