"""Threshold selection on a synthetic precision-recall case, and `aegis thresholds`."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from aegis_app.cli.main import main
from models.decisions import thresholds as rules
from models.lifecycle import registry


def _case():
    # 10 scores, known PR points: top-3 all fraud, then mixed.
    scores = np.array([0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    y = np.array([1, 1, 1, 0, 1, 0, 0, 1, 0, 0])
    return y, scores


def test_precision_target():
    y, s = _case()
    assert rules.threshold_for_precision(y, s, 1.0) == 0.85  # recall 3/5 at precision 1
    assert rules.threshold_for_precision(y, s, 0.8) == 0.7  # 4/5 precision, recall 4/5
    unreachable = rules.threshold_for_precision(np.array([0, 1, 0]), np.array([0.9, 0.5, 0.1]), 0.9)
    assert unreachable is None
    chosen = rules.choose(y, s, target_precision=0.8)
    assert chosen["thresholds"] == {"review": 0.7, "block": 0.85}
    assert chosen["review"]["precision"] == pytest.approx(0.8)
    assert chosen["block"]["precision"] == 1.0


def test_daily_budget_counts_cards_per_day():
    days = np.array(["2018-08-08"] * 5 + ["2018-08-09"] * 5, dtype="datetime64[D]")
    cards = np.array([1, 1, 2, 3, 4, 1, 2, 3, 4, 5])
    s = np.array([0.9, 0.8, 0.7, 0.3, 0.1, 0.95, 0.6, 0.5, 0.2, 0.1])
    cut = rules.threshold_for_daily_budget(s, days, cards, budget=2)
    point = rules.operating_point(np.zeros(10), s, cut, days, cards)
    assert point.cards_per_day == 2.0
    assert cut == 0.6


def test_command_updates_manifest_and_writes_png(fitted_bundle, tmp_path, capsys):
    fitted_bundle.version = "v1"
    try:
        registry.save(fitted_bundle, tmp_path / "models", {"start": "2018-07-25"})
    finally:
        fitted_bundle.version = "vtest"
    rng = np.random.default_rng(0)
    n = 4000
    y = (rng.random(n) < 0.02).astype(int)
    score = np.clip(rng.normal(0.1, 0.1, n) + 0.6 * y, 0, 1)
    ids = np.arange(n)
    data = pd.DataFrame(
        {
            "TRANSACTION_ID": ids,
            "TX_DATETIME": pd.Timestamp("2018-08-08") + pd.to_timedelta(ids * 120, unit="s"),
            "CUSTOMER_ID": rng.integers(0, 500, n),
            "TERMINAL_ID": rng.integers(0, 900, n),
            "TX_AMOUNT": rng.gamma(2.0, 25.0, n).round(2),
            "TX_TIME_SECONDS": ids * 120,
            "TX_TIME_DAYS": ids * 120 // 86400,
            "TX_FRAUD": y,
            "TX_FRAUD_SCENARIO": y,
        }
    )
    data.to_csv(tmp_path / "data.csv", index=False)
    pd.DataFrame({"TRANSACTION_ID": ids, "other": score, "ensemble": score}).to_csv(
        tmp_path / "scores.csv", index=False
    )
    code = main(
        [
            "thresholds",
            "--scores",
            str(tmp_path / "scores.csv"),
            "--data",
            str(tmp_path / "data.csv"),
            "--target-precision",
            "0.5",
            "--model-dir",
            str(tmp_path / "models"),
            "--plot",
            str(tmp_path / "pr.png"),
        ]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    manifest = registry.read_manifest(tmp_path / "models" / "versions" / "v1")
    assert manifest.thresholds == out["thresholds"]
    assert manifest.threshold_selection["rule"]["review"] == "precision >= 0.5"
    assert manifest.thresholds["review"] <= manifest.thresholds["block"]
    assert (tmp_path / "pr.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "models" / "versions" / "v1" / "pr_thresholds.png").exists()
    assert registry.load(tmp_path / "models").thresholds == manifest.thresholds
