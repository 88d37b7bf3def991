"""Retraining on a real SQLite result store: challengers are trained on stored stream
features and labels, promoted only when they beat the champion by the margin, refused
otherwise, and every run is recorded."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aegis_app.harness import simulator
from aegis_app.serving.store import Store
from models.lifecycle import registry, retraining
from models.lifecycle.retraining import RetrainConfig
from models.lifecycle.training import Window, fit_bundle
from tables.batch import compute_features
from tables.features import ALL_FEATURES

DELAY = 7
CONFIG = RetrainConfig(train_days=(7,), holdout_days=5, delay_days=DELAY, min_frauds=5)


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    """40 days of transactions with the features the stream would have computed."""
    data = simulator.generate(customers=250, terminals=500, days=40, seed=5)
    features = compute_features(data, DELAY)
    extra = [name for name in ALL_FEATURES if name not in data.columns]
    return pd.concat([data, features[extra]], axis=1)


def _decisions(frame: pd.DataFrame) -> list[dict]:
    return [
        {
            "transaction_id": int(row.TRANSACTION_ID),
            "customer_id": int(row.CUSTOMER_ID),
            "terminal_id": int(row.TERMINAL_ID),
            "tx_amount": float(row.TX_AMOUNT),
            "tx_datetime": row.TX_DATETIME.strftime("%Y-%m-%d %H:%M:%S"),
            "action": "allow",
            "score": 0.0,
            "scores": {},
            "reasons": [],
            "model_version": "v0",
            "features": {name: float(getattr(row, name)) for name in ALL_FEATURES},
            "ingested_ms": None,
            "decided_at": "2026-01-01T00:00:00+00:00",
        }
        for row in frame.itertuples(index=False)
    ]


def _labels(frame: pd.DataFrame) -> list[dict]:
    """Chargebacks: every fraud, known DELAY days after its transaction."""
    frauds = frame[frame["TX_FRAUD"] == 1]
    return [
        {
            "transaction_id": int(row.TRANSACTION_ID),
            "label": 1,
            "source": "chargeback",
            "known_at": (row.TX_DATETIME + pd.Timedelta(days=DELAY)).tz_localize("UTC"),
        }
        for row in frauds.itertuples(index=False)
    ]


@pytest.fixture(scope="module")
def seeded_db(history, tmp_path_factory) -> Path:
    """The stored decisions and labels, written once; each test gets its own copy."""
    path = tmp_path_factory.mktemp("retraining") / "store.db"
    seeded = Store(f"sqlite:///{path}")
    seeded.upsert_decisions(_decisions(history))
    seeded.add_stream_labels(_labels(history))
    seeded.close()
    return path


@pytest.fixture
def store(seeded_db, tmp_path):
    shutil.copy(seeded_db, tmp_path / "store.db")
    s = Store(f"sqlite:///{tmp_path}/store.db")
    try:
        yield s
    finally:
        s.close()


def _unsupervised_champion(history: pd.DataFrame, model_dir) -> str:
    """A weak champion: the unsupervised detectors only (no labels)."""
    window = Window(pd.Timestamp("2018-04-10"), 7)
    rows = history[window.mask(history["TX_DATETIME"])]
    bundle = fit_bundle(
        rows[list(ALL_FEATURES)].to_numpy(),
        None,
        version="v-champion",
        times=rows["TX_DATETIME"].to_numpy(),
    )
    registry.save(bundle, model_dir, window.describe())
    return bundle.version


def test_plan_respects_the_label_delay():
    layout = retraining.plan(pd.Timestamp("2018-05-10 13:00"), CONFIG)
    assert layout.holdout.start == pd.Timestamp("2018-04-28")
    assert layout.holdout.end == pd.Timestamp("2018-05-03")  # 7 days before the reference day
    assert [(w.start, w.end) for w in layout.train] == [
        (pd.Timestamp("2018-04-21"), pd.Timestamp("2018-04-28"))
    ]


def test_a_better_challenger_is_promoted_and_announced(history, store, tmp_path):
    champion = _unsupervised_champion(history, tmp_path)
    announced = []
    run = retraining.retrain(store, tmp_path, CONFIG, on_promote=announced.append)
    assert run["decision"] == "promoted", run["reason"]
    challenger = run["challengers"][0]
    assert run["promoted"] == challenger["version"] == registry.active_version(tmp_path)
    ap = challenger["metrics"]["average_precision"]
    assert ap >= run["champion"]["metrics"]["average_precision"] + CONFIG.margin
    assert challenger["win_rate"] >= CONFIG.confidence
    assert [(a["version"], a["previous"]) for a in announced] == [(run["promoted"], champion)]
    # the holdout is the latest settled window, and its frauds come from the stored labels
    assert run["holdout"]["end_exclusive"] == "2018-05-03"
    assert run["holdout"]["frauds"] >= CONFIG.min_frauds
    manifest = registry.read_manifest(registry.version_dir(tmp_path, run["promoted"]))
    assert manifest.lineage["run"] == run["run"] and manifest.lineage["champion"] == champion
    assert manifest.drift_reference  # the drift monitor's reference comes with it
    assert registry.list_runs(tmp_path)[-1]["decision"] == "promoted"
    # a promoted challenger loads like any version (what the workers will do)
    assert registry.load(tmp_path).version == run["promoted"]


def test_a_challenger_that_does_not_beat_the_margin_is_refused(history, store, tmp_path):
    first = retraining.retrain(store, tmp_path, CONFIG)
    assert first["decision"] == "promoted"  # no champion yet: "no usable champion"
    assert "no usable champion" in first["reason"]
    # Same data, same seed: the new challenger equals the champion, which it must beat.
    newer = history.tail(1).assign(
        TRANSACTION_ID=10**9, TX_DATETIME=history["TX_DATETIME"].max() + pd.Timedelta(seconds=1)
    )
    store.upsert_decisions(_decisions(newer))
    second = retraining.retrain(store, tmp_path, CONFIG)
    assert second["decision"] == "kept", second["reason"]
    assert "does not beat" in second["reason"]
    assert registry.active_version(tmp_path) == first["promoted"]
    assert len(registry.list_versions(tmp_path)) == 2  # the refused challenger is kept, inactive
    # nothing new since: the scheduled job does not train again
    third = retraining.retrain(store, tmp_path, CONFIG)
    assert third["decision"] == "skipped" and "no new transactions" in third["reason"]
    assert [r["decision"] for r in registry.list_runs(tmp_path)] == [
        "promoted",
        "kept",
        "skipped",
    ]


def test_labels_not_yet_known_are_not_used(store):
    """Deciding as of an earlier moment sees only the labels known by then."""
    as_of = pd.Timestamp("2018-04-25 00:00:00")
    known_by = as_of.tz_localize("UTC").to_pydatetime()
    holdout = retraining.plan(as_of, CONFIG).holdout
    window = Window(holdout.start, 30)  # reaches past as_of - delay: labels still unknown
    everything = retraining.load_window(store, window, None)
    known = retraining.load_window(store, window, known_by)
    assert 0 < known.frauds < everything.frauds
    fraud_times = known.frame["TX_DATETIME"][known.y == 1]
    assert (fraud_times + pd.Timedelta(days=DELAY) <= as_of).all()
    # the holdout itself is settled: every label in it is known by then
    settled_all = retraining.load_window(store, holdout, None)
    settled_known = retraining.load_window(store, holdout, known_by)
    assert settled_known.frauds == settled_all.frauds >= CONFIG.min_frauds


def test_too_few_labelled_frauds_decides_nothing(store, tmp_path):
    strict = RetrainConfig(train_days=(7,), holdout_days=5, delay_days=DELAY, min_frauds=10**6)
    run = retraining.retrain(store, tmp_path, strict)
    assert run["decision"] == "skipped" and "fewer than" in run["reason"]
    assert registry.active_version(tmp_path) is None


def test_win_rate_of_a_clearly_better_and_a_clearly_worse_challenger():
    rng = np.random.default_rng(0)
    y = (rng.random(4000) < 0.05).astype(int)
    champion = y * 0.5 + rng.random(4000)  # some signal
    better = y * 2.0 + rng.random(4000)  # much more
    assert retraining.win_rate(y, champion, better, "average_precision", 100) > 0.99
    assert retraining.win_rate(y, better, champion, "auc_roc", 100) < 0.01
    assert retraining.win_rate(y, champion, better, "card_precision_at_100") is None


def test_one_retraining_at_a_time(tmp_path):
    with retraining.exclusive(tmp_path) as first:
        with retraining.exclusive(tmp_path) as second:
            assert first and not second
    with retraining.exclusive(tmp_path) as again:
        assert again


def test_config_is_checked():
    with pytest.raises(ValueError, match="metric"):
        RetrainConfig(metric="accuracy")
    with pytest.raises(ValueError, match="at least 1 day"):
        RetrainConfig(train_days=())
    with pytest.raises(ValueError, match="confidence"):
        RetrainConfig(confidence=1.0)
