"""A trained model version: its detectors, the stacked ensemble and the thresholds.

The bundle is what a worker loads and calls on each micro-batch; `score` is vectorised
and needs no TensorFlow (the autoencoder scores with numpy, see models/autoencoder.py).

Ensemble ("stacking"): each detector's raw score goes through a fixed monotone transform
(logit for probabilities, log for squared errors, identity otherwise), then a logistic
regression fitted on a *time-ordered holdout* (the latest part of the training window,
scored by detectors fitted on the earlier part) turns them into one calibrated fraud
probability in [0, 1]. The stacker is stored as plain numpy (mean, scale, coefficients),
so combining costs a few microseconds per batch.

Fallbacks, when the stacker could not be fitted:
  * labels but too few frauds in the holdout: the mean probability of the supervised ones;
  * no labels: the mean percentile of the unsupervised detectors' scores.

Categorical features (`categories`: feature -> vocabulary from the training data) enter
the matrix as codes (models/detectors/categories.py); only detectors that handle them
(the gradient-boosted trees) read those columns.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from models.detectors.base import Detector
from models.detectors.categories import encode_values, vocabulary_index

STACKED, SUPERVISED_MEAN, PERCENTILE_MEAN = "stacked", "supervised_mean", "percentile_mean"
_EPS = 1e-6


@dataclass
class Stacker:
    """Logistic regression over transformed detector scores, as numpy arrays."""

    names: list[str]  # detector order of the columns
    transforms: list[str]  # per column: "logit", "log" or "identity"
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    def features(self, raw: dict[str, np.ndarray]) -> np.ndarray:
        cols = [transform(raw[name], how) for name, how in zip(self.names, self.transforms)]
        return (np.column_stack(cols) - self.mean) / self.scale

    def predict(self, raw: dict[str, np.ndarray]) -> np.ndarray:
        z = self.features(raw) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-np.clip(z, -500, 500)))

    def describe(self) -> dict:
        return {
            "type": "logistic_regression",
            "inputs": [f"{how}({name})" for name, how in zip(self.names, self.transforms)],
            "coef_standardised": {n: float(c) for n, c in zip(self.names, self.coef)},
            "intercept": float(self.intercept),
        }


def transform(values: np.ndarray, how: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if how == "logit":
        p = np.clip(values, _EPS, 1 - _EPS)
        return np.log(p / (1 - p))
    if how == "log":
        return np.log(np.maximum(values, 0.0) + _EPS)
    return values


@dataclass
class ModelBundle:
    version: str
    feature_names: list[str]
    detectors: dict[str, Detector]
    # Ensemble-score thresholds: >= review -> review, >= block -> block. The registry
    # replaces them with the manifest's on load (`aegis thresholds` edits the manifest).
    thresholds: dict[str, float]
    # Training mean and std per feature, to explain which features stand out.
    feature_mean: np.ndarray
    feature_std: np.ndarray
    # Per detector, the feature names it reads (a subset of feature_names, in order).
    detector_features: dict[str, list[str]] = field(default_factory=dict)
    ensemble_method: str = STACKED
    stacker: Stacker | None = None
    # Per detector, sorted scores on training data (percentile fallback only).
    reference_scores: dict[str, np.ndarray] = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)
    # Categorical feature -> its vocabulary (position = code); empty: all numeric.
    categories: dict[str, list[str]] = field(default_factory=dict)
    # Per feature, the value a missing (NaN) one takes for detectors that cannot read NaN
    # (training median); None: trained before missing values were filled.
    fill_values: np.ndarray | None = None

    def __post_init__(self) -> None:
        self._index_columns()

    @property
    def categorical_features(self) -> list[str]:
        return [name for name in self.feature_names if name in self.categories]

    def matrix(self, rows: Sequence[Mapping[str, object]] | pd.DataFrame) -> np.ndarray:
        """The float matrix in feature order: feature dicts (one per transaction) or a
        DataFrame with a column per feature; categoricals become their codes."""
        names = self.feature_names
        if isinstance(rows, pd.DataFrame):
            absent = [name for name in names if name not in rows.columns]
            if absent:
                raise KeyError(f"features missing from the batch: {absent}")
            columns = [self._column(name, rows[name]) for name in names]
            return np.column_stack(columns) if columns else np.empty((len(rows), 0))
        if not self._vocab_index:
            # One C-level lookup per row (itemgetter) and one conversion: None -> NaN.
            return np.array(list(map(self._numeric_values, rows)), dtype=np.float64).reshape(
                len(rows), len(names)
            )
        X = np.empty((len(rows), len(names)), dtype=np.float64)
        try:
            X[:, self._numeric_positions] = np.array(
                list(map(self._numeric_values, rows)), dtype=np.float64
            ).reshape(len(rows), len(self._numeric_positions))
        except (TypeError, ValueError):
            for j in self._numeric_positions:  # name the feature whose value is not a number
                self._column(names[j], [row[names[j]] for row in rows])
            raise
        for j in np.flatnonzero(self._categorical_mask):
            X[:, j] = self._column(names[j], [row[names[j]] for row in rows])
        return X

    def _column(self, name: str, values: Sequence[object] | pd.Series) -> np.ndarray:
        index = self._vocab_index.get(name)
        if index is not None:
            return encode_values(values, index)
        try:
            if isinstance(values, pd.Series):  # nullable dtypes: pd.NA -> NaN
                return values.to_numpy(dtype=np.float64, na_value=np.nan)
            return np.asarray(values, dtype=np.float64)  # None -> NaN
        except (TypeError, ValueError):
            raise ValueError(
                f"feature {name!r} is numeric in model {self.version} but a value is not a number"
            ) from None

    def _index_columns(self) -> None:
        self._vocab_index = {
            name: vocabulary_index(vocab) for name, vocab in self.categories.items()
        }
        self._categorical_mask = np.array(
            [name in self.categories for name in self.feature_names], dtype=bool
        )
        # The "typical" part of a reason, per feature (explain_rows writes it for each alert).
        self._typical = [f"(typical {mean:.4g}, " for mean in np.ravel(self.feature_mean).tolist()]
        self._numeric_positions = np.flatnonzero(~self._categorical_mask)
        self._numeric_values = _values_of([self.feature_names[j] for j in self._numeric_positions])
        position = {name: i for i, name in enumerate(self.feature_names)}
        self._columns: dict[str, np.ndarray | None] = {}
        for name in self.detectors:
            subset = self.detector_features.get(name)
            if subset is None or list(subset) == list(self.feature_names):
                self._columns[name] = None
            else:
                self._columns[name] = np.array([position[f] for f in subset], dtype=np.intp)

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("categories", {})  # bundles pickled before categoricals
        self.__dict__.setdefault("fill_values", None)
        self._index_columns()

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        for derived in (
            "_columns",
            "_vocab_index",
            "_categorical_mask",
            "_numeric_positions",
            "_numeric_values",
            "_typical",
        ):
            state.pop(derived, None)
        return state

    def raw_scores(self, X: np.ndarray) -> dict[str, np.ndarray]:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 1:
            X = X.reshape(1, -1)
        filled = self._filled(X)  # once for every detector that cannot read NaN
        out: dict[str, np.ndarray] = {}
        for name, detector in self.detectors.items():
            source = X if getattr(detector, "handles_missing", False) else filled
            cols = self._columns.get(name)
            Xd = source if cols is None else source[:, cols]
            out[name] = np.asarray(detector.score(Xd), dtype=np.float64)
        return out

    def detector_input(self, name: str, X: np.ndarray) -> np.ndarray:
        """A detector's columns of X, missing values filled unless it reads NaN itself."""
        if not getattr(self.detectors[name], "handles_missing", False):
            X = self._filled(X)
        cols = self._columns.get(name)
        return X if cols is None else X[:, cols]

    def _filled(self, X: np.ndarray) -> np.ndarray:
        """X with each missing value replaced by its feature's fill value (if any)."""
        fill = self.fill_values
        if fill is None:
            return X
        missing = np.isnan(X)
        if not missing.any():
            return X
        return np.where(missing, fill, X)

    def score(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """Raw score per detector and `ensemble`, the calibrated fraud probability in [0, 1]."""
        out = self.raw_scores(X)
        out["ensemble"] = self.combine(out)
        return out

    def combine(self, raw: dict[str, np.ndarray]) -> np.ndarray:
        n = len(next(iter(raw.values()))) if raw else 0
        if self.ensemble_method == STACKED and self.stacker is not None:
            return self.stacker.predict(raw)
        if self.ensemble_method == SUPERVISED_MEAN:
            sup = [raw[n_] for n_, d in self.detectors.items() if d.supervised]
            return np.clip(np.mean(sup, axis=0), 0.0, 1.0) if sup else np.zeros(n)
        parts = [
            percentile(self.reference_scores[name], raw[name])
            for name in self.detectors
            if name in self.reference_scores
        ]
        return np.mean(parts, axis=0) if parts else np.zeros(n)

    def explain(self, row: np.ndarray, top: int = 3) -> list[str]:
        """Readable reasons for one row (see `explain_rows`)."""
        return self.explain_rows(np.asarray(row, dtype=np.float64).reshape(1, -1), top)[0]

    def explain_rows(self, X: np.ndarray, top: int = 3) -> list[list[str]]:
        """Readable reasons for each row of X: the features pushing the linear model's
        fraud log-odds up the most (exact per-feature contributions, cheap), completed by
        the features furthest from their training norm. The arithmetic and the orderings
        are done for all rows at once; only the texts are made row by row."""
        X = np.asarray(X, dtype=np.float64)
        if len(X) == 0:
            return []
        Z = (X - self.feature_mean) / np.where(self.feature_std > 0, self.feature_std, 1.0)
        # A code has no typical value, and NaN (missing) stands out from nothing.
        Z = np.where(self._categorical_mask | np.isnan(Z), 0.0, Z)
        z_order = np.argsort(-np.abs(Z), axis=1).tolist()
        linear = next((d for d in self.detectors.values() if hasattr(d, "contributions")), None)
        if linear is not None:
            cols = self._columns.get(linear.name)
            part = linear.contributions(self.detector_input(linear.name, X))
            contrib = np.zeros(X.shape)
            if cols is None:
                contrib[:] = part
            else:
                contrib[:, cols] = part
            contrib_order = np.argsort(-contrib, axis=1)[:, :top].tolist()
            contrib = contrib.tolist()
        names, typical = self.feature_names, self._typical
        out = []
        for r, (row, z) in enumerate(zip(X.tolist(), Z.tolist())):
            reasons: list[str] = []
            used: set[int] = set()
            if linear is not None:
                c = contrib[r]
                for i in contrib_order[r]:
                    if c[i] < 0.5:  # under ~1.6x odds: not a reason worth showing
                        break
                    used.add(i)
                    reasons.append(
                        f"{names[i]}={row[i]:.4g} {typical[i]}{z[i]:+.1f} sd; "
                        f"fraud log-odds {c[i]:+.2f})"
                    )
            for i in z_order[r]:
                if len(reasons) >= top or abs(z[i]) < 2.0:
                    break
                if i in used:
                    continue
                reasons.append(f"{names[i]}={row[i]:.4g} {typical[i]}{z[i]:+.1f} sd)")
            out.append(reasons)
        return out


def _values_of(names: list[str]) -> Callable[[Mapping[str, object]], tuple]:
    """A function giving a feature dict's values of `names`, in order, as a tuple."""
    if len(names) == 1:
        name = names[0]
        return lambda row: (row[name],)
    if not names:
        return lambda row: ()
    return operator.itemgetter(*names)


def percentile(reference_sorted: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Share of reference scores at or below each value: a monotone map onto [0, 1]."""
    if len(reference_sorted) == 0:
        return np.zeros(len(values))
    return np.searchsorted(reference_sorted, values, side="right") / len(reference_sorted)
