"""Small synthetic data for the model tests (fast: a few thousand rows, tiny networks)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aegis_app.core import config as config_files

# The default preset (configs/handbook.toml) and its features, in order.
HANDBOOK = config_files.load(config_files.resolve(None))
HANDBOOK_FEATURES = list(HANDBOOK.feature_names)


def synthetic(n: int = 3000, fraud_rate: float = 0.03, seed: int = 0):
    """Features in the Handbook preset's order; frauds have large amounts and terminal risk."""
    rng = np.random.default_rng(seed)
    names = HANDBOOK_FEATURES
    X = rng.normal(size=(n, len(names)))
    X[:, names.index("TX_AMOUNT")] = rng.gamma(2.0, 25.0, n)
    y = (rng.random(n) < fraud_rate).astype(int)
    y[:: n // 20] = 1  # frauds spread over time: every time block has some
    for name, shift in (
        ("TX_AMOUNT", 150.0),
        ("TERMINAL_ID_RISK_7DAY_WINDOW", 3.0),
        ("CUSTOMER_ID_AMOUNT_RATIO_30DAY", 3.0),
    ):
        X[y == 1, names.index(name)] += shift
    times = pd.Timestamp("2018-07-25") + pd.to_timedelta(np.sort(rng.random(n)) * 7, unit="D")
    cards = rng.integers(0, n // 5, n)
    return X, y, times.to_numpy(), cards


@pytest.fixture(scope="session")
def data():
    return synthetic()


@pytest.fixture(scope="session")
def fitted_bundle(data):
    from models.detectors.autoencoder import AutoencoderDetector
    from models.detectors.gradient_boosting import GradientBoostingDetector
    from models.detectors.isolation_forest import IsolationForestDetector
    from models.detectors.logistic import LogisticRegressionDetector
    from models.detectors.ocsvm import OneClassSVMDetector
    from models.lifecycle.training import fit_bundle

    X, y, times, cards = data
    detectors = [
        IsolationForestDetector(n_estimators=30, max_samples=256),
        OneClassSVMDetector(n_components=30),
        AutoencoderDetector(hidden=(8, 4, 8), epochs=1, batch_size=512),
        LogisticRegressionDetector(),
        GradientBoostingDetector(max_iter=30),
    ]
    return fit_bundle(
        X,
        y,
        "vtest",
        detectors=detectors,
        feature_names=HANDBOOK_FEATURES,
        times=times,
        cards=cards,
    )
