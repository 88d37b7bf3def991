"""`aegis evaluate`, `thresholds` and `train` on a generated file with the default preset
(configs/handbook.toml): the same path as any other config (source reader, feature
engine), the Handbook's features, ids read as text, and a model the default process loads."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from aegis_app.cli.main import main
from aegis_app.core.config import load, resolve
from models.lifecycle import registry
from models.lifecycle.active_model import LOADED, ActiveModel


def _last_json(out: str) -> dict:
    return json.loads(out[out.index("{") :])


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("handbook") / "tx.csv"
    args = ["generate", "--customers", "300", "--terminals", "600", "--days", "40"]
    assert main([*args, "--seed", "2", "--out", str(path), "--quiet"]) == 0
    return str(path)


def test_evaluate_then_thresholds_on_the_default_preset(generated, tmp_path, capsys):
    capsys.readouterr()
    scores = tmp_path / "scores.csv"
    split = ["--train-start", "2018-04-15", "--test-days", "7", "--quiet"]
    assert main(["evaluate", "--data", generated, *split, "--scores-out", str(scores)]) == 0
    result = _last_json(capsys.readouterr().out)
    assert result["rows"]["test_set"] > 1000 and result["rows"]["train_frauds"] > 10
    assert result["metrics"]["ensemble"]["auc_roc"] > 0.7
    handbook = load(resolve(None))
    # The unsupervised detectors read the preset's subset, the trees every feature.
    features = result["model"]["detector_features"]
    assert features["gradient_boosting"] == list(handbook.feature_names)
    assert "TERMINAL_ID_RISK_7DAY_WINDOW" in features["isolation_forest"]
    frame = pd.read_csv(scores, dtype={"TRANSACTION_ID": str})
    assert list(frame.columns)[0] == "TRANSACTION_ID" and list(frame.columns)[-1] == "ensemble"
    data = pd.read_csv(generated, dtype={"TRANSACTION_ID": str})
    assert frame["TRANSACTION_ID"].isin(data["TRANSACTION_ID"]).all()

    argv = ["thresholds", "--scores", str(scores), "--data", generated]
    assert main([*argv, "--daily-budget", "20", "--dry-run"]) == 0
    chosen = _last_json(capsys.readouterr().out)
    assert chosen["selection"]["source"]["unmatched_scores"] == 0
    assert 0 < chosen["thresholds"]["review"] <= chosen["thresholds"]["block"] <= 1


def test_a_scores_file_without_the_id_column_is_named(generated, tmp_path, capsys):
    scores = tmp_path / "scores.csv"
    pd.DataFrame({"id": ["1"], "ensemble": [0.5]}).to_csv(scores, index=False)
    argv = ["thresholds", "--scores", str(scores), "--data", generated, "--dry-run"]
    assert main(argv) == 2
    assert "needs 'TRANSACTION_ID' and 'ensemble' columns" in capsys.readouterr().err


def test_train_records_the_preset_and_the_default_process_loads_it(generated, tmp_path, capsys):
    models = tmp_path / "models"
    assert main(["train", "--data", generated, "--model-dir", str(models), "--quiet"]) == 0
    version = _last_json(capsys.readouterr().out)["version"]
    manifest = registry.read_manifest(registry.version_dir(models, version))
    handbook = load(resolve(None))
    assert manifest.feature_names == list(handbook.feature_names)
    assert manifest.config["source"]["roles"]["card"] == "CUSTOMER_ID"
    assert manifest.training_window["rows"] > 1000
    assert ActiveModel(models).refresh().outcome == LOADED
