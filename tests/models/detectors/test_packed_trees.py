"""Packed gradient-boosted trees score categorical splits exactly like sklearn."""

from __future__ import annotations

import numpy as np
import pytest

from models.detectors.gradient_boosting import GradientBoostingDetector


def _categorical_data(n: int = 4000, seed: int = 0):
    """Numeric, categorical (codes 0, 2, 3, 5, 9: gaps), numeric, categorical (0..2)."""
    rng = np.random.default_rng(seed)
    amount = rng.gamma(2.0, 25.0, n)
    merchant_kind = rng.choice([0.0, 2.0, 3.0, 5.0, 9.0], n)
    other = rng.normal(size=n)
    gender = rng.integers(0, 3, n).astype(float)
    merchant_kind[rng.random(n) < 0.05] = np.nan  # missing in training too
    risky = np.isin(merchant_kind, [3.0, 9.0]) & (gender != 1)
    y = (rng.random(n) < np.where(risky, 0.4, 0.02) + (amount > 120) * 0.2).astype(int)
    return np.column_stack([amount, merchant_kind, other, gender]), y


MASK = np.array([False, True, False, True])


@pytest.fixture(scope="module")
def categorical_gbm():
    X, y = _categorical_data()
    detector = GradientBoostingDetector(max_iter=60, max_leaf_nodes=15, min_samples_leaf=10)
    detector.use_categorical(MASK)
    return detector.fit(X, y)


def test_categorical_splits_are_used(categorical_gbm):
    nodes = [p.nodes for (p,) in categorical_gbm.model._predictors]
    assert any(n["is_categorical"].any() for n in nodes)
    assert categorical_gbm.packed_.categorical is not None


def test_categorical_scores_equal_predict_proba(categorical_gbm):
    X, _ = _categorical_data(n=3000, seed=1)
    rng = np.random.default_rng(2)
    # Categories never seen in training (1, 4, 7, 300), negative, fractional and missing.
    X[::7, 1] = rng.choice([1.0, 4.0, 7.0, 300.0, -1.0, 2.5], len(X[::7]))
    X[::11, 1] = np.nan
    X[::13, 3] = np.nan
    X[::17, 3] = 5.0  # unseen in the second categorical
    X[::19, 0] = np.nan  # missing numeric value
    expected = categorical_gbm.model.predict_proba(X)[:, 1]
    np.testing.assert_allclose(categorical_gbm.score(X), expected, rtol=0, atol=1e-9)
    # One row at a time (a micro-batch of one) too.
    for i in range(0, 200, 37):
        np.testing.assert_allclose(
            categorical_gbm.score(X[i : i + 1]), expected[i : i + 1], rtol=0, atol=1e-9
        )


def test_all_numeric_model_has_no_categorical_part():
    X, y = _categorical_data(n=1500)
    detector = GradientBoostingDetector(max_iter=20)
    detector.use_categorical(np.zeros(X.shape[1], dtype=bool))
    detector.fit(np.nan_to_num(X), y)
    assert detector.packed_.categorical is None
    assert detector.model.categorical_features == "from_dtype"  # sklearn's default, as before
