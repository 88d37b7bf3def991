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


# ------------------------------------------------------------------ the compiled traversal


def _numeric_data(n: int, seed: int, missing: float = 0.0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6))
    X[:, 0] = rng.gamma(2.0, 25.0, n)
    y = (rng.random(n) < 0.03 + 0.3 * (X[:, 0] > 120) + 0.1 * (X[:, 3] > 1.5)).astype(int)
    if missing:
        X[rng.random(X.shape) < missing] = np.nan
    return X, y


def _batches(X: np.ndarray, size: int):
    return [X[i : i + size] for i in range(0, len(X), size)]


@pytest.fixture(scope="module")
def default_forests():
    """The detectors' default sizes (IsolationForest: 200 trees of 2,048 samples, depth 11;
    gradient boosting: 500 trees of 7 leaves), the boosted trees fitted with missing values
    so that their nodes learn both ways for NaN."""
    from models.detectors.isolation_forest import IsolationForestDetector

    X, y = _numeric_data(4000, seed=0)
    forest = IsolationForestDetector().fit(X)
    Xm, ym = _numeric_data(4000, seed=1, missing=0.05)
    boosted = GradientBoostingDetector().fit(Xm, ym)
    return forest, boosted


def test_isolation_forest_scores_equal_sklearns(default_forests):
    forest, _ = default_forests
    X, _ = _numeric_data(1500, seed=2)
    X[::50, 1] = 1e6  # far outside the training range
    expected = -forest.model.score_samples(X)
    got = forest.score(X)
    # Leaf depths are added in sklearn's order: the same float operations, the same bits.
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    for size in (1, 3, 50, 500):  # a row scores the same in any batch
        np.testing.assert_array_equal(
            np.concatenate([forest.score(b) for b in _batches(X, size)]), got
        )


def test_boosted_trees_equal_sklearns_with_missing_values(default_forests):
    _, boosted = default_forests
    packed = boosted.packed_
    split = packed.left != np.arange(len(packed.left))
    assert 0.2 < packed.missing_left[split].mean() < 0.8  # NaN goes left at some, right at others
    X, _ = _numeric_data(1500, seed=3, missing=0.08)
    X[::7] = np.nan  # whole rows missing
    X[1::11, 2] = np.inf
    X[2::13, 4] = -np.inf
    assert np.isnan(X).any(axis=1).mean() < 0.6  # both kinds of rows in most batches
    raw = boosted.packed_.total(X, start=boosted.baseline_)
    np.testing.assert_allclose(raw, boosted.model.decision_function(X), rtol=0, atol=1e-12)
    expected = boosted.model.predict_proba(X)[:, 1]
    got = boosted.score(X)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    for size in (1, 2, 50, 500):
        np.testing.assert_array_equal(
            np.concatenate([boosted.score(b) for b in _batches(X, size)]), got
        )
    assert boosted.score(X[:0]).shape == (0,)


def test_forests_pickle_as_before_and_load_from_todays_pickles(default_forests, categorical_gbm):
    """The pickled state is the packed arrays alone (as bundles saved before the compiled
    traversal hold them); the walking layout is rebuilt on load."""
    import pickle

    saved_before = {
        "feature",
        "threshold",
        "left",
        "right",
        "missing_left",
        "value",
        "roots",
        "depth",
        "float32_inputs",
        "categorical",
    }
    X, _ = _numeric_data(300, seed=4, missing=0.05)
    for detector in (*default_forests, categorical_gbm):
        forest = detector.packed_
        state = forest.__getstate__()
        assert set(state) == saved_before
        restored = object.__new__(type(forest))
        restored.__setstate__(pickle.loads(pickle.dumps(state)))
        Xd = X[:, :4] if detector is categorical_gbm else X
        np.testing.assert_array_equal(restored.total(Xd), forest.total(Xd))
