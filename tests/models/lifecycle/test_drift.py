"""models.lifecycle.drift: reference profiles, the PSI and window reports; the reference a training
run writes into the manifest."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.lifecycle.drift import (
    EMPTY_BIN_SHARE,
    PSI_MODERATE,
    PSI_SIGNIFICANT,
    drift_report,
    level,
    profile_entry,
    psi,
    reference_profile,
)

NAMES = ["amount", "flag", "constant", "count"]


def training(n: int = 20_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A continuous, a 0/1 flag (10% ones), a constant and a small count; beta scores."""
    rng = np.random.default_rng(seed)
    X = np.column_stack(
        [
            rng.gamma(2.0, 25.0, n),
            (rng.random(n) < 0.1).astype(float),
            np.full(n, 7.0),
            rng.poisson(2.0, n).astype(float),
        ]
    )
    return X, rng.beta(1.0, 30.0, n)


@pytest.fixture(scope="module")
def reference() -> dict:
    X, scores = training()
    return reference_profile(X, NAMES, scores)


def rows_of(X: np.ndarray) -> list[dict]:
    return [dict(zip(NAMES, map(float, row))) for row in X]


def test_profile_shape_and_json(reference):
    assert set(reference["features"]) == set(NAMES) and reference["n"] == 20_000
    for entry in [*reference["features"].values(), reference["score"]]:
        assert len(entry["shares"]) == len(entry["edges"]) + 1
        assert entry["edges"] == sorted(set(entry["edges"]))
        assert sum(entry["shares"]) + entry["missing_share"] == pytest.approx(1.0)
    # Continuous values get the requested number of bins, each about a tenth of the data.
    amount = reference["features"]["amount"]
    assert len(amount["shares"]) == 10
    assert max(amount["shares"]) < 0.11
    # The manifest is strict JSON: nothing non-finite, round-trips unchanged.
    assert json.loads(json.dumps(reference, allow_nan=False)) == reference


def test_same_distribution_is_near_zero(reference):
    X, scores = training(5000, seed=1)
    report = drift_report(reference, rows_of(X), scores)
    assert report["n"] == report["n_scores"] == 5000
    assert max(report["feature_psi"].values()) < 0.02
    assert report["score_psi"] < 0.02
    assert report["feature_psi"]["constant"] == pytest.approx(0.0)
    assert report["level"] == "stable" and not report["alert"]


def test_shifted_feature_and_score_alert(reference):
    X, scores = training(5000, seed=2)
    X[:, 0] *= 1.6  # larger amounts
    report = drift_report(reference, rows_of(X), scores)
    assert report["feature_psi"]["amount"] > PSI_SIGNIFICANT
    assert report["max_feature"] == "amount"
    assert report["top_features"][0] == {"feature": "amount", "psi": report["max_feature_psi"]}
    assert report["score_psi"] < PSI_MODERATE
    assert report["alert"] and report["level"] == "significant"

    X, scores = training(5000, seed=3)
    shifted = drift_report(reference, rows_of(X), np.clip(scores * 3, 0, 1))
    assert shifted["score_psi"] > PSI_SIGNIFICANT
    assert shifted["max_feature_psi"] < PSI_MODERATE
    assert shifted["alert"]


def test_binary_flag_and_constant(reference):
    flag = reference["features"]["flag"]
    assert flag["edges"] == [0.0, 1.0]  # two real bins (0 and 1) and an empty (1, inf)
    assert flag["shares"][0] == pytest.approx(0.9, abs=0.01)
    constant = reference["features"]["constant"]
    assert constant["edges"] == [7.0] and constant["shares"] == [1.0, 0.0]

    assert psi(flag, np.r_[np.zeros(900), np.ones(100)]) < 0.01
    # 10% -> 20% flagged is still under "moderate" (~0.08); 10% -> 25% is moderate (~0.16).
    assert psi(flag, np.r_[np.zeros(800), np.ones(200)]) < PSI_MODERATE
    assert PSI_MODERATE < psi(flag, np.r_[np.zeros(750), np.ones(250)]) < PSI_SIGNIFICANT
    assert psi(flag, np.r_[np.zeros(500), np.ones(500)]) > PSI_SIGNIFICANT
    # A constant that changes value lands in the empty bin: finite, and large.
    assert psi(constant, np.full(100, 7.0)) == 0.0
    moved = psi(constant, np.full(100, 9.0))
    assert np.isfinite(moved) and moved > 5


def test_empty_bins_are_floored_so_psi_stays_finite():
    constant = profile_entry(np.full(100, 7.0))  # bins (-inf, 7] = 1.0 and (7, inf) = 0.0
    moved = psi(constant, np.full(50, 9.0))
    floor = EMPTY_BIN_SHARE
    assert moved == pytest.approx(2 * (1 - floor) * np.log(1 / floor))
    # Values beyond the training range count in the outermost bins.
    entry = profile_entry(np.arange(100.0), bins=4)
    assert entry["edges"] == [24.0, 49.0, 74.0] and entry["shares"] == [0.25] * 4
    outside = psi(entry, np.full(50, 1e9))
    expected = 0.75 * np.log(4) + 3 * (floor - 0.25) * np.log(floor / 0.25)
    assert outside == pytest.approx(expected)
    assert psi(entry, np.full(50, -1e9)) == pytest.approx(expected)
    # The reference's own values compare at zero.
    assert psi(entry, np.arange(100.0)) == pytest.approx(0.0, abs=1e-12)


def test_nan_is_its_own_bin_and_inf_goes_to_the_ends():
    values = np.r_[np.linspace(0, 1, 900), np.full(100, np.nan)]
    entry = profile_entry(values, bins=5)
    assert entry["missing_share"] == pytest.approx(0.1)
    assert sum(entry["shares"]) == pytest.approx(0.9)
    assert psi(entry, values) == pytest.approx(0.0, abs=1e-12)
    assert psi(entry, np.linspace(0, 1, 900)) > 0.05  # missing values disappeared
    assert psi(entry, np.r_[np.linspace(0, 1, 500), np.full(500, np.nan)]) > PSI_SIGNIFICANT
    # +/-inf are values at the extremes: the outermost bins, never an error or NaN.
    with_inf = np.r_[np.linspace(0, 1, 898), -np.inf, np.inf, np.full(100, np.nan)]
    assert np.isfinite(psi(entry, with_inf))
    # Training data with inf still gets finite edges.
    entry = profile_entry(np.r_[np.arange(10.0), np.inf, -np.inf], bins=4)
    assert all(np.isfinite(entry["edges"]))
    # A feature never present in training: one bin, all missing.
    empty = profile_entry(np.full(10, np.nan))
    assert empty["edges"] == [] and empty["missing_share"] == 1.0
    assert psi(empty, np.full(5, np.nan)) == pytest.approx(0.0)


def test_rows_may_miss_features_or_carry_junk(reference):
    X, scores = training(500, seed=4)
    rows = rows_of(X)
    for row in rows[::2]:
        del row["count"]  # an older worker that did not compute it
    rows[1]["amount"] = "not a number"
    rows[3]["extra"] = 1.0  # unknown to the reference: ignored
    report = drift_report(reference, rows, scores)
    assert set(report["feature_psi"]) == set(NAMES)
    assert report["feature_psi"]["count"] > PSI_SIGNIFICANT  # half missing
    assert report["feature_psi"]["amount"] < PSI_MODERATE


def test_dataframe_rows_and_partial_scores(reference):
    X, scores = training(1000, seed=5)
    frame = pd.DataFrame(X, columns=NAMES)
    report = drift_report(reference, frame, scores[:300])
    assert report["n"] == 1000 and report["n_scores"] == 300
    assert drift_report(reference, frame, None)["score_psi"] is None


def test_small_or_empty_windows_never_alert(reference):
    X, scores = training(50, seed=6)
    X[:, 0] *= 5
    report = drift_report(reference, rows_of(X), scores)
    assert report["feature_psi"]["amount"] > PSI_SIGNIFICANT
    assert not report["enough_data"] and not report["alert"]
    assert drift_report(reference, rows_of(X), scores, min_rows=10)["alert"]
    empty = drift_report(reference, [], [])
    assert empty["n"] == 0 and empty["feature_psi"] == {} and empty["score_psi"] is None
    assert not empty["alert"] and empty["level"] == "unknown"


def test_psi_refuses_no_values_and_profile_checks_shapes(reference):
    with pytest.raises(ValueError):
        psi(reference["score"], [])
    with pytest.raises(ValueError):
        reference_profile(np.zeros((3, 2)), ["a"], np.zeros(3))


def test_levels():
    assert [level(v) for v in (None, 0.0, 0.1, 0.2, 0.25, 3.0)] == [
        "unknown",
        "stable",
        "moderate",
        "moderate",
        "significant",
        "significant",
    ]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.floats(allow_nan=True, allow_infinity=True, width=32),
            st.sampled_from([0.0, 1.0]),
        ),
        min_size=1,
        max_size=200,
    ),
    st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=1, max_size=200),
    st.integers(2, 20),
)
def test_psi_is_finite_non_negative_and_zero_on_itself(train, live, bins):
    entry = profile_entry(np.array(train), bins=bins)
    assert json.dumps(entry, allow_nan=False)
    value = psi(entry, np.array(live))
    assert np.isfinite(value) and value >= 0.0
    assert psi(entry, np.array(train)) == pytest.approx(0.0, abs=1e-9)


def test_training_writes_the_reference_into_the_manifest(tmp_path, monkeypatch):
    """`aegis train` (models.lifecycle.experiment.train) profiles its window's features and
    scores."""
    from aegis_app.harness import simulator
    from models.detectors.isolation_forest import IsolationForestDetector
    from models.detectors.logistic import LogisticRegressionDetector
    from models.lifecycle import experiment, registry
    from models.lifecycle.training import default_train_window, fit_bundle, history_start
    from tables.engine import compute_features
    from tests.models.conftest import HANDBOOK, HANDBOOK_FEATURES

    def small_fit(*args, **kwargs):  # two quick detectors: this test is about the wiring
        kwargs["detectors"] = [
            IsolationForestDetector(n_estimators=20, max_samples=128),
            LogisticRegressionDetector(),
        ]
        return fit_bundle(*args, **kwargs)

    monkeypatch.setattr(experiment, "fit_bundle", small_fit)
    frame = simulator.generate(customers=60, terminals=120, days=25, seed=3)
    window = default_train_window(frame["TX_DATETIME"], 7, 7)
    manifest = experiment.train(frame, tmp_path, window, delay_days=7)
    reference = registry.read_manifest(registry.version_dir(tmp_path, manifest.version))
    profile = reference.drift_reference
    assert list(profile["features"]) == HANDBOOK_FEATURES
    assert profile["n"] == manifest.training_window["rows"] > 0
    assert profile["score"]["n"] == profile["n"]
    # The training window itself, scored by the registered model, shows no drift.
    view = experiment.prepare(frame, HANDBOOK)
    rows = experiment._rows_between(view, history_start(window.start, HANDBOOK), window.end)
    features = compute_features(rows, HANDBOOK).loc[window.mask(rows["TX_DATETIME"])]
    bundle = registry.load(tmp_path, config=HANDBOOK)
    scores = bundle.score(bundle.matrix(features))["ensemble"]
    report = drift_report(profile, features, scores)
    assert report["n"] == profile["n"]
    assert report["max_feature_psi"] == pytest.approx(0.0, abs=1e-9)
    assert report["score_psi"] == pytest.approx(0.0, abs=1e-9)


def test_the_weekend_flag_never_raises_an_alert():
    rng = np.random.default_rng(1)
    X = np.column_stack([rng.normal(size=5000), (rng.random(5000) < 2 / 7).astype(float)])
    reference = reference_profile(X, ["TX_AMOUNT", "TX_DURING_WEEKEND"], rng.random(5000))
    saturday = [{"TX_AMOUNT": v, "TX_DURING_WEEKEND": 1.0} for v in rng.normal(size=500)]
    report = drift_report(reference, saturday, None)
    assert report["feature_psi"]["TX_DURING_WEEKEND"] > 1.0  # reported ...
    assert not report["alert"] and report["max_feature"] == "TX_AMOUNT"  # ... never the cause
    assert report["top_features"][-1]["feature"] == "TX_DURING_WEEKEND"


def test_the_configs_calendar_features_never_raise_an_alert():
    """A window that starts at 9:00 on a Saturday: hour, night and weekend mixes are far from
    the reference's, and a model trained with the config reports them without alerting."""
    from aegis_app.core.config import load, resolve
    from models.lifecycle.drift import calendar_features
    from models.lifecycle.model_config import describe_config

    calendar = calendar_features(describe_config(load(resolve(None))))
    assert set(calendar) == {"TX_DURING_WEEKEND", "TX_DURING_NIGHT", "TX_HOUR"}
    rng = np.random.default_rng(2)
    names = ["TX_AMOUNT", "TX_HOUR", "TX_DURING_NIGHT", "TX_DURING_WEEKEND"]
    hours = rng.integers(0, 24, 5000).astype(float)
    X = np.column_stack(
        [rng.normal(size=5000), hours, (hours <= 6).astype(float), rng.random(5000) < 2 / 7]
    )
    reference = reference_profile(X, names, rng.random(5000), calendar=calendar)
    late = rng.integers(9, 24, 500).astype(float)
    window = [
        {"TX_AMOUNT": a, "TX_HOUR": h, "TX_DURING_NIGHT": 0.0, "TX_DURING_WEEKEND": 1.0}
        for a, h in zip(rng.normal(size=500), late, strict=True)
    ]
    report = drift_report(reference, window, None)
    assert report["feature_psi"]["TX_HOUR"] > 0.25  # reported ...
    assert not report["alert"] and report["max_feature"] == "TX_AMOUNT"  # ... never the cause
