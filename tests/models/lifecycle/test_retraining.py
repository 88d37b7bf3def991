"""Retraining on a real SQLite result store: challengers are trained on stored stream
features and labels, promoted only when they beat the champion by the margin, refused
otherwise, and every run is recorded."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aegis_app.core.config import load, resolve
from aegis_app.core.records import format_datetime
from aegis_app.core.source import SourceReader
from aegis_app.harness import simulator
from aegis_app.serving.store import Store
from models.lifecycle import registry, retraining
from models.lifecycle.retraining import RetrainConfig
from models.lifecycle.training import Window, fit_bundle
from tables.engine import compute_features

DELAY = 7
CONFIG = RetrainConfig(train_days=(7,), holdout_days=5, delay_days=DELAY, min_frauds=5)
HANDBOOK = load(resolve(None))
NAMES = list(HANDBOOK.feature_names)


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    """40 days of normalised transactions with the features the stream would have computed
    (the Handbook preset), and TX_DATETIME."""
    data = simulator.generate(customers=250, terminals=500, days=40, seed=5)
    normalised, bad = SourceReader(HANDBOOK).frame(data)
    assert not bad
    features = compute_features(normalised, HANDBOOK)
    times = pd.to_datetime(normalised["ts"], unit="s").rename("TX_DATETIME")
    return pd.concat([normalised, times, features], axis=1)


def _decisions(frame: pd.DataFrame) -> list[dict]:
    """The decisions the stream would have stored (models/decisions/decision.py's shape)."""
    return [
        {
            "transaction_id": row["transaction_id"],
            "card": row["card"],
            "merchant": row["merchant"],
            "amount": float(row["amount"]),
            "ts": int(row["ts"]),
            "tx_datetime": format_datetime(int(row["ts"])),
            "fields": {},
            "entities": {"card": row["card"], "terminal": row["merchant"]},
            "action": "allow",
            "score": 0.0,
            "scores": {},
            "reasons": [],
            "model_version": "v0",
            "features": {name: float(row[name]) for name in NAMES},
            "ingested_ms": None,
            "decided_at": "2026-01-01T00:00:00+00:00",
        }
        for row in frame.to_dict("records")
    ]


def _labels(frame: pd.DataFrame) -> list[dict]:
    """Chargebacks: every fraud, known DELAY days after its transaction."""
    frauds = frame[frame["label"] == 1]
    return [
        {
            "transaction_id": row["transaction_id"],
            "label": 1,
            "source": "chargeback",
            "known_at": (row["TX_DATETIME"] + pd.Timedelta(days=DELAY)).tz_localize("UTC"),
            "card": row["card"],
        }
        for row in frauds.to_dict("records")
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
        rows[NAMES],
        None,
        version="v-champion",
        times=rows["TX_DATETIME"].to_numpy(),
        config=HANDBOOK,
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
    newer = history.tail(1).assign(transaction_id="newer", ts=history["ts"].max() + 1)
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


# --------------------------------------------------------------------------- another config

SPARKOV = load(Path(__file__).resolve().parents[3] / "configs" / "sparkov.toml")


def _sparkov_features(history: pd.DataFrame, seed: int = 0) -> list[dict]:
    """Stored features of the Sparkov preset for the history's rows: text for the
    categories, frauds with larger amounts and riskier categories."""
    rng = np.random.default_rng(seed)
    fraud = (history["label"] == 1).to_numpy()
    out: list[dict] = [{} for _ in range(len(history))]
    for feature in SPARKOV.features:
        if feature.kind == "category":
            pool = ["grocery_pos", "misc_net"] if feature.field == "category" else ["F", "M"]
            values = rng.choice(pool, len(history)).astype(object)
            if feature.field == "category":
                values[fraud & (rng.random(len(history)) < 0.8)] = "misc_net"
        else:
            values = rng.normal(size=len(history)) + np.where(fraud, 2.0, 0.0)
        for row, value in zip(out, values):
            row[feature.name] = value if isinstance(value, str) else float(value)
    return out


def test_retraining_follows_the_config_the_stream_ran(history, tmp_path):
    """With the Sparkov preset, challengers learn the stored category text, record that
    config, and a champion trained with the Handbook preset is not evaluated."""
    store = Store(f"sqlite:///{tmp_path}/sparkov.db")
    try:
        decisions = _decisions(history)
        for decision, features in zip(decisions, _sparkov_features(history)):
            decision["features"] = features
        store.upsert_decisions(decisions)
        store.add_stream_labels(_labels(history))
        models = tmp_path / "models"
        champion = _unsupervised_champion(history, models)
        run = retraining.retrain(store, models, CONFIG, feature_config=SPARKOV)
    finally:
        store.close()
    assert run["champion"]["version"] == champion
    assert "trained with another config" in run["champion"]["refused"]
    assert run["decision"] == "promoted", run["reason"]
    bundle = registry.load(models, run["promoted"], config=SPARKOV)
    assert bundle.feature_names == list(SPARKOV.feature_names)
    assert set(bundle.categories["category"]) == {"grocery_pos", "misc_net"}
    manifest = registry.read_manifest(registry.version_dir(models, run["promoted"]))
    assert manifest.config["source"]["roles"]["transaction_id"] == "trans_num"


def test_decisions_stored_under_another_config_are_not_trained_on(store, tmp_path):
    run = retraining.retrain(store, tmp_path, CONFIG, feature_config=SPARKOV)
    assert run["decision"] == "skipped"
    assert "stored decisions lack features" in run["reason"]
    assert registry.list_versions(tmp_path) == []
