"""The scoring path (feature matrix, compiled trees, detectors, stacked ensemble,
explanations) gives what sklearn's models and the per-row code it replaced give, on
bundles trained by the project's training code: the Handbook preset (all five detectors)
and the Sparkov preset (categorical features, missing values)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from aegis_app.core import config as config_files
from models.detectors.bundle import ModelBundle
from models.detectors.gradient_boosting import GradientBoostingDetector
from models.detectors.isolation_forest import IsolationForestDetector
from models.detectors.logistic import LogisticRegressionDetector
from models.detectors.ocsvm import OneClassSVMDetector
from models.lifecycle.training import fit_bundle
from tests.models.lifecycle.test_model_config import CONFIGS, sparkov_frame

TOLERANCE = 1e-9  # the goal is 1e-6; the differences are float rounding (~1e-16)


# ------------------------------------------------------------------ references


def reference_matrix(bundle: ModelBundle, rows: list[dict]) -> np.ndarray:
    """The feature matrix as it was built before: column by column, each categorical value
    looked up as text (NaN when missing or unseen), None as NaN."""
    columns = []
    for name in bundle.feature_names:
        values = [row[name] for row in rows]
        if name in bundle.categories:
            index = {v: i for i, v in enumerate(bundle.categories[name])}
            columns.append(
                [math.nan if pd.isna(v) else index.get(str(v), math.nan) for v in values]
            )
        else:
            columns.append([math.nan if v is None else float(v) for v in values])
    return np.array(columns, dtype=np.float64).T.reshape(len(rows), len(bundle.feature_names))


def reference_input(bundle: ModelBundle, name: str, X: np.ndarray) -> np.ndarray:
    cols = [bundle.feature_names.index(f) for f in bundle.detector_features[name]]
    Xd = X[:, cols]
    if bundle.fill_values is None or getattr(bundle.detectors[name], "handles_missing", False):
        return Xd
    return np.where(np.isnan(Xd), bundle.fill_values[cols], Xd)


def reference_scores(bundle: ModelBundle, X: np.ndarray) -> dict[str, np.ndarray]:
    """Each detector's score from its sklearn model (the autoencoder, unchanged and checked
    against Keras in test_detectors.py, from its own), and the stacker on those."""
    raw = {}
    for name, detector in bundle.detectors.items():
        Xd = reference_input(bundle, name, X)
        if name == "isolation_forest":
            raw[name] = -detector.model.score_samples(Xd)
        elif name in ("gradient_boosting", "logistic_regression"):
            raw[name] = detector.model.predict_proba(Xd)[:, 1]
        elif name == "ocsvm":
            raw[name] = -detector.model.decision_function(Xd)
        else:
            raw[name] = detector.score(Xd)
    return {**raw, "ensemble": bundle.combine(raw)}


def reference_explain(bundle: ModelBundle, row: np.ndarray, top: int = 3) -> list[str]:
    """ModelBundle.explain as it was, one row at a time."""
    std = np.where(bundle.feature_std > 0, bundle.feature_std, 1.0)
    z = (row - bundle.feature_mean) / std
    categorical = np.array([n in bundle.categories for n in bundle.feature_names])
    z = np.where(categorical | np.isnan(z), 0.0, z)
    reasons: list[str] = []
    used: set[int] = set()
    linear = next((d for d in bundle.detectors.values() if hasattr(d, "contributions")), None)
    if linear is not None:
        cols = [bundle.feature_names.index(f) for f in bundle.detector_features[linear.name]]
        contrib = np.zeros(len(row))
        Xd = reference_input(bundle, linear.name, row.reshape(1, -1))
        contrib[cols] = linear.contributions(Xd)[0]
        for i in np.argsort(-contrib)[:top]:
            if contrib[i] < 0.5:
                break
            used.add(int(i))
            reasons.append(
                f"{bundle.feature_names[i]}={row[i]:.4g} (typical {bundle.feature_mean[i]:.4g}, "
                f"{z[i]:+.1f} sd; fraud log-odds {contrib[i]:+.2f})"
            )
    for i in np.argsort(-np.abs(z)):
        if len(reasons) >= top or abs(z[i]) < 2.0:
            break
        if int(i) in used:
            continue
        reasons.append(
            f"{bundle.feature_names[i]}={row[i]:.4g} (typical {bundle.feature_mean[i]:.4g}, "
            f"{z[i]:+.1f} sd)"
        )
    return reasons


def assert_scores_equal(bundle: ModelBundle, X: np.ndarray) -> None:
    """Batch by batch (the autoencoder's float32 products round a little differently with
    the batch's size, as they always did), at sizes 1 to 500."""
    for size in (1, 50, 500):
        for start in range(0, min(len(X), 4 * size), size):
            batch = X[start : start + size]
            got, expected = bundle.score(batch), reference_scores(bundle, batch)
            assert set(got) == set(expected)
            for name, values in expected.items():
                np.testing.assert_allclose(got[name], values, rtol=0, atol=TOLERANCE, err_msg=name)


# ------------------------------------------------------------------ Handbook


@pytest.fixture(scope="module")
def handbook_rows(data, fitted_bundle) -> list[dict]:
    """Feature dicts of the Handbook preset, some values missing (NaN or None)."""
    X = data[0][:1200].copy()
    rng = np.random.default_rng(5)
    X[rng.random(X.shape) < 0.03] = np.nan
    X[::40, fitted_bundle.feature_names.index("TX_AMOUNT")] *= 60  # some clear alerts
    rows = [dict(zip(fitted_bundle.feature_names, map(float, x))) for x in X]
    for row in rows[::9]:
        row["CUSTOMER_ID_AMOUNT_ZSCORE_30DAY"] = None
    return rows


def test_handbook_matrix_equals_the_column_by_column_one(fitted_bundle, handbook_rows):
    X = fitted_bundle.matrix(handbook_rows)
    np.testing.assert_array_equal(X, reference_matrix(fitted_bundle, handbook_rows))
    assert np.isnan(X).any()


def test_handbook_scores_equal_sklearns(fitted_bundle, handbook_rows):
    assert set(fitted_bundle.detectors) == {
        "isolation_forest",
        "ocsvm",
        "autoencoder",
        "logistic_regression",
        "gradient_boosting",
    }
    assert fitted_bundle.stacker is not None
    assert_scores_equal(fitted_bundle, fitted_bundle.matrix(handbook_rows))


def test_handbook_explanations_equal_the_per_row_ones(fitted_bundle, handbook_rows):
    X = fitted_bundle.matrix(handbook_rows)
    explained = fitted_bundle.explain_rows(X)
    assert explained == [reference_explain(fitted_bundle, x) for x in X]
    assert sum(map(bool, explained)) > 50  # reasons were given, of both kinds
    assert any("log-odds" in r for rs in explained for r in rs)
    assert any(r.endswith(" sd)") for rs in explained for r in rs)
    assert fitted_bundle.explain(X[3]) == explained[3]
    assert fitted_bundle.explain_rows(X[:0]) == []


# ------------------------------------------------------------------ Sparkov


@pytest.fixture(scope="module")
def sparkov():
    return config_files.load(CONFIGS / "sparkov.toml")


@pytest.fixture(scope="module")
def sparkov_bundle(sparkov):
    frame, y = sparkov_frame(sparkov, n=3000)
    detectors = [
        IsolationForestDetector(n_estimators=100, max_samples=512),
        OneClassSVMDetector(n_components=50),
        LogisticRegressionDetector(),
        GradientBoostingDetector(max_iter=80, max_leaf_nodes=15, min_samples_leaf=10),
    ]
    return fit_bundle(frame, y, "vsparkov", detectors=detectors, config=sparkov)


@pytest.fixture(scope="module")
def sparkov_rows(sparkov) -> list[dict]:
    frame, _ = sparkov_frame(sparkov, n=1200, seed=9)
    frame.loc[::5, "category"] = "brand_new_category"
    frame.loc[::7, "gender"] = None
    frame.loc[::11, "amount"] += 40.0
    rows = frame.to_dict("records")
    for row in rows[::13]:
        row["city_pop"] = None
        row["gender"] = float("nan")
    return rows


def test_sparkov_matrix_equals_the_column_by_column_one(sparkov_bundle, sparkov_rows):
    X = sparkov_bundle.matrix(sparkov_rows)
    np.testing.assert_array_equal(X, reference_matrix(sparkov_bundle, sparkov_rows))
    assert sparkov_bundle.categorical_features == ["category", "gender"]


def test_sparkov_scores_equal_sklearns(sparkov_bundle, sparkov_rows):
    gbm = sparkov_bundle.detectors["gradient_boosting"]
    assert gbm.packed_.categorical is not None  # categorical splits are walked too
    assert any(p.nodes["is_categorical"].any() for (p,) in gbm.model._predictors)
    X = sparkov_bundle.matrix(sparkov_rows)
    assert np.isnan(X).any()
    assert_scores_equal(sparkov_bundle, X)


def test_sparkov_explanations_equal_the_per_row_ones(sparkov_bundle, sparkov_rows):
    X = sparkov_bundle.matrix(sparkov_rows)
    explained = sparkov_bundle.explain_rows(X)
    assert explained == [reference_explain(sparkov_bundle, x) for x in X]
    assert sum(map(bool, explained)) > 20
