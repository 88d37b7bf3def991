"""Every detector follows models.detectors.base.Detector: fit -> self, score -> one value per row,
higher = more suspicious."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from models.detectors.autoencoder import AutoencoderDetector
from models.detectors.base import Detector
from models.detectors.gradient_boosting import GradientBoostingDetector
from models.detectors.isolation_forest import IsolationForestDetector
from models.detectors.logistic import LogisticRegressionDetector
from models.detectors.ocsvm import OneClassSVMDetector


def _detectors():
    return [
        IsolationForestDetector(n_estimators=30, max_samples=256),
        OneClassSVMDetector(n_components=30),
        AutoencoderDetector(hidden=(8, 4, 8), epochs=3, batch_size=256),
        LogisticRegressionDetector(),
        GradientBoostingDetector(max_iter=30),
    ]


@pytest.fixture(scope="module")
def blob():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(2000, 6))
    y = np.zeros(len(X), dtype=int)
    # Labelled outliers for the supervised detectors: far out on every axis.
    X[:40] += 6.0
    y[:40] = 1
    return X, y


@pytest.mark.parametrize("detector", _detectors(), ids=lambda d: d.name)
def test_interface_and_obvious_outlier(detector, blob):
    X, y = blob
    assert isinstance(detector, Detector)
    assert isinstance(detector.name, str) and isinstance(detector.supervised, bool)
    fitted = detector.fit(X, y if detector.supervised else None)
    assert fitted is detector
    scores = detector.score(X[40:140])
    assert scores.shape == (100,) and np.isfinite(scores).all()
    assert detector.score(X[40:41]).shape == (1,)
    outlier = np.full((1, X.shape[1]), 8.0)
    assert detector.score(outlier)[0] > np.quantile(detector.score(X[40:]), 0.99)
    # Picklable (the registry stores bundles with joblib) and identical after a round trip.
    clone = pickle.loads(pickle.dumps(detector))
    np.testing.assert_allclose(clone.score(X[40:140]), scores)


@pytest.mark.parametrize(
    "detector", [LogisticRegressionDetector(), GradientBoostingDetector(max_iter=5)]
)
def test_supervised_need_labels(detector, blob):
    with pytest.raises(ValueError):
        detector.fit(blob[0], None)


def test_autoencoder_numpy_forward_matches_keras(blob):
    X, _ = blob
    ae = AutoencoderDetector(hidden=(8, 4, 8), epochs=2, batch_size=256).fit(X)
    prepared = ae._prepare(X[:50])
    keras_out = np.asarray(ae.keras_model_(prepared, training=False))
    np.testing.assert_allclose(ae.reconstruct(prepared), keras_out, rtol=1e-4, atol=1e-5)
    assert "keras_model_" not in pickle.loads(pickle.dumps(ae)).__dict__
    # Early stopping watched a time-ordered validation split.
    assert "val_loss" in ae.history_


def test_autoencoder_is_reproducible(blob):
    X, _ = blob
    a = AutoencoderDetector(hidden=(8, 4, 8), epochs=1, batch_size=256, seed=3).fit(X[:600])
    b = AutoencoderDetector(hidden=(8, 4, 8), epochs=1, batch_size=256, seed=3).fit(X[:600])
    np.testing.assert_array_equal(a.score(X[:100]), b.score(X[:100]))


def test_fast_scoring_equals_sklearn(blob):
    X, y = blob
    iforest = IsolationForestDetector(n_estimators=30, max_samples=256).fit(X)
    np.testing.assert_allclose(iforest.score(X), -iforest.model.score_samples(X), rtol=1e-12)
    gbm = GradientBoostingDetector(max_iter=30).fit(X, y)
    np.testing.assert_allclose(gbm.score(X), gbm.model.predict_proba(X)[:, 1], rtol=1e-9)
    svm = OneClassSVMDetector(n_components=30).fit(X)
    np.testing.assert_allclose(svm.score(X), -svm.model.decision_function(X), atol=1e-9)
    lr = LogisticRegressionDetector().fit(X, y)
    np.testing.assert_allclose(lr.score(X), lr.model.predict_proba(X)[:, 1], rtol=1e-9)


def test_a_one_class_svm_pickled_before_its_kernel_weights_scores_the_same(blob):
    """Detectors saved before `kernel_weights_` was kept compute it on first use."""
    import pickle

    X, _ = blob
    svm = OneClassSVMDetector(n_components=200).fit(X)  # the default size
    np.testing.assert_allclose(svm.score(X), -svm.model.decision_function(X), rtol=0, atol=1e-9)
    state = pickle.loads(pickle.dumps(svm.__dict__))
    del state["kernel_weights_"]
    old = object.__new__(OneClassSVMDetector)
    old.__dict__.update(state)
    np.testing.assert_array_equal(old.score(X), svm.score(X))
