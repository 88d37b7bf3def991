"""`aegis evaluate`, `thresholds` and `train` on a file of another schema (configs/sparkov.toml on
the public Sparkov slice): the config's features, its id column in the scores file, and a
model that records its config, which a process computing other features refuses."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from aegis_app.cli.main import main
from aegis_app.core.config import load, resolve
from models.lifecycle.active_model import LOADED, REFUSED, ActiveModel

ROOT = Path(__file__).resolve().parents[3]
SPARKOV = str(ROOT / "configs" / "sparkov.toml")
# The slice holds 8 days (2019-01-07 .. 01-15): a short split of the Handbook protocol.
SPLIT = ["--train-start", "2019-01-08", "--train-days", "3", "--delay-days", "1"]


def _last_json(out: str) -> dict:
    return json.loads(out[out.index("{") :])


def test_evaluate_follows_the_config(sparkov_slice, tmp_path, capsys):
    scores = tmp_path / "scores.csv"
    argv = ["evaluate", "--config", SPARKOV, "--data", str(sparkov_slice), *SPLIT]
    code = main([*argv, "--test-days", "3", "--scores-out", str(scores), "--quiet"])
    assert code == 0
    result = _last_json(capsys.readouterr().out)
    assert result["rows"]["test_set"] > 1000 and result["rows"]["train_frauds"] > 10
    assert result["metrics"]["ensemble"]["auc_roc"] > 0.8
    frame = pd.read_csv(scores, dtype={"trans_num": str})
    assert list(frame.columns)[0] == "trans_num" and list(frame.columns)[-1] == "ensemble"
    assert "gradient_boosting" in frame.columns
    assert frame["trans_num"].str.fullmatch(r"[0-9a-f]{32}").all()
    # Review and block thresholds from those scores and the file's labels, matched on
    # the configured id column.
    argv = ["thresholds", "--config", SPARKOV, "--scores", str(scores), "--data"]
    assert main([*argv, str(sparkov_slice), "--daily-budget", "50", "--dry-run"]) == 0
    chosen = _last_json(capsys.readouterr().out)
    assert chosen["selection"]["source"]["unmatched_scores"] == 0
    assert 0 < chosen["thresholds"]["review"] <= chosen["thresholds"]["block"] <= 1


def test_a_model_trained_on_another_schema_is_refused_by_a_handbook_process(
    sparkov_slice, tmp_path, capsys, monkeypatch
):
    models = tmp_path / "models"
    argv = ["train", "--config", SPARKOV, "--data", str(sparkov_slice), "--model-dir"]
    assert main([*argv, str(models), "--train-days", "3", "--quiet"]) == 0
    version = _last_json(capsys.readouterr().out)["version"]
    manifest = json.loads((models / "versions" / version / "manifest.json").read_text())
    assert manifest["config"]["source"]["roles"]["transaction_id"] == "trans_num"
    # By default a process checks models against the config it runs: `aegis --config`
    # hands it on through AEGIS_CONFIG ...
    monkeypatch.setenv("AEGIS_CONFIG", SPARKOV)
    assert ActiveModel(models).refresh().outcome == LOADED
    # ... else the default preset, the Handbook's, whose features this model lacks.
    monkeypatch.delenv("AEGIS_CONFIG")
    active = ActiveModel(models)
    assert active.refresh().outcome == REFUSED
    assert "trained with another config" in active.last_error
    handbook = ActiveModel(models, config=load(resolve(None)))
    assert handbook.refresh().outcome == REFUSED
