"""The bundle: one calibrated ensemble score in [0, 1], thresholds, reasons."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from models.detectors.bundle import PERCENTILE_MEAN, STACKED
from models.detectors.isolation_forest import IsolationForestDetector
from models.lifecycle.training import fit_bundle
from tests.models.conftest import HANDBOOK_FEATURES


def test_scores_and_ranges(fitted_bundle, data):
    X, y, _, _ = data
    scores = fitted_bundle.score(X)
    assert set(scores) == {*fitted_bundle.detectors, "ensemble"}
    assert fitted_bundle.ensemble_method == STACKED
    ens = scores["ensemble"]
    assert ens.shape == (len(X),) and (ens >= 0).all() and (ens <= 1).all()
    assert roc_auc_score(y, ens) > 0.9
    # A single row scores like the same row inside a batch.
    np.testing.assert_allclose(fitted_bundle.score(X[5:6])["ensemble"], ens[5:6])
    th = fitted_bundle.thresholds
    assert 0 <= th["review"] <= th["block"] <= 1


def test_metadata_records_subsets_and_holdout(fitted_bundle):
    subsets = fitted_bundle.detector_features
    assert subsets["isolation_forest"] != HANDBOOK_FEATURES  # unsupervised on a subset
    assert subsets["gradient_boosting"] == HANDBOOK_FEATURES
    metrics = fitted_bundle.metadata["holdout_metrics"]
    assert {"auc_roc", "average_precision", "card_precision_at_100"} <= set(metrics["ensemble"])


def test_explain(fitted_bundle, data):
    X, y, _, _ = data
    row = X[np.flatnonzero(y)[0]].copy()
    row[HANDBOOK_FEATURES.index("TX_AMOUNT")] = 5000.0
    reasons = fitted_bundle.explain(row)
    assert 1 <= len(reasons) <= 3
    assert any(r.startswith("TX_AMOUNT=5000") for r in reasons)
    assert all(isinstance(r, str) for r in reasons)
    typical = fitted_bundle.feature_mean.copy()
    assert fitted_bundle.explain(typical) == []


def test_unnamed_features_are_the_default_presets(data):
    X, y, _, _ = data
    bundle = fit_bundle(X, y, "vnames", detectors=[IsolationForestDetector(n_estimators=5)])
    assert bundle.feature_names == HANDBOOK_FEATURES
    with pytest.raises(ValueError, match="X has 3 columns for 21 feature names"):
        fit_bundle(X[:, :3], y, "vbad", detectors=[IsolationForestDetector(n_estimators=5)])


def test_unsupervised_only_fallback(data):
    X, _, _, _ = data
    bundle = fit_bundle(
        X,
        None,
        "vu",
        detectors=[IsolationForestDetector(n_estimators=20)],
        feature_names=HANDBOOK_FEATURES,
    )
    assert bundle.ensemble_method == PERCENTILE_MEAN
    ens = bundle.score(X[:100])["ensemble"]
    assert (ens >= 0).all() and (ens <= 1).all()
    assert bundle.thresholds["review"] <= bundle.thresholds["block"]
