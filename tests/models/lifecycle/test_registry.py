"""The registry refuses what the running code cannot serve, and keeps the ACTIVE version."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.lifecycle import registry
from models.lifecycle.registry import ModelRefused


def _save(bundle, model_dir, version, activate=True):
    bundle.version = version
    try:
        window = {"start": "2018-07-25", "days": 7}
        return registry.save(bundle, model_dir, window, activate=activate)
    finally:
        bundle.version = "vtest"


def _edit_manifest(model_dir, version, **changes):
    path = model_dir / "versions" / version / "manifest.json"
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def test_round_trip_and_manifest(fitted_bundle, data, tmp_path):
    manifest = _save(fitted_bundle, tmp_path, "v1")
    assert registry.active_version(tmp_path) == "v1"
    assert manifest.feature_names == list(fitted_bundle.feature_names)
    assert set(manifest.holdout_metrics["ensemble"]) >= {"auc_roc", "average_precision"}
    assert manifest.libraries["scikit-learn"] and manifest.artifacts["bundle.joblib"]
    loaded = registry.load(tmp_path)
    X = data[0][:64]
    np.testing.assert_allclose(loaded.score(X)["ensemble"], fitted_bundle.score(X)["ensemble"])
    assert [m.version for m in registry.list_versions(tmp_path)] == ["v1"]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"feature_names": ["NOT_A_FEATURE"]}, "cannot compute"),
        ({"format": 1}, "format"),
        ({"code_version": "0.0.1"}, "model code"),
        ({"libraries": {"scikit-learn": "0.1.0", "numpy": "0.1"}}, "scikit-learn"),
    ],
    ids=["feature", "format", "code", "library"],
)
def test_manifest_mismatch_refused_and_active_kept(fitted_bundle, tmp_path, change, message):
    _save(fitted_bundle, tmp_path, "v1")
    _save(fitted_bundle, tmp_path, "v2", activate=False)
    _edit_manifest(tmp_path, "v2", **change)
    with pytest.raises(ModelRefused, match=message):
        registry.load(tmp_path, "v2")
    assert registry.load(tmp_path).version == "v1"


def test_feature_order_mismatch_refused(fitted_bundle, tmp_path):
    _save(fitted_bundle, tmp_path, "v2")
    names = list(fitted_bundle.feature_names)
    _edit_manifest(tmp_path, "v2", feature_names=names[::-1])
    with pytest.raises(ModelRefused, match="feature order"):
        registry.load(tmp_path, "v2")


def test_corrupt_artifact_refused_and_active_kept(fitted_bundle, tmp_path):
    _save(fitted_bundle, tmp_path, "v1")
    _save(fitted_bundle, tmp_path, "v2", activate=False)
    artifact = tmp_path / "versions" / "v2" / "bundle.joblib"
    blob = bytearray(artifact.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    artifact.write_bytes(bytes(blob))
    with pytest.raises(ModelRefused, match="checksum"):
        registry.load(tmp_path, "v2")
    artifact.unlink()
    with pytest.raises(ModelRefused, match="missing"):
        registry.load(tmp_path, "v2")
    assert registry.load(tmp_path).version == "v1"


def test_unreadable_manifest_and_no_model(fitted_bundle, tmp_path):
    with pytest.raises(ModelRefused, match="no active model"):
        registry.load(tmp_path)
    _save(fitted_bundle, tmp_path, "v1")
    (tmp_path / "versions" / "v1" / "manifest.json").write_text("{not json")
    with pytest.raises(ModelRefused, match="unreadable"):
        registry.load(tmp_path)
    assert registry.list_versions(tmp_path) == []


def test_manifest_thresholds_win(fitted_bundle, tmp_path):
    _save(fitted_bundle, tmp_path, "v1")
    registry.update_thresholds(tmp_path, None, {"review": 0.2, "block": 0.8}, {"rule": "x"})
    loaded = registry.load(tmp_path)  # artifact untouched: checksum still valid
    assert loaded.thresholds == {"review": 0.2, "block": 0.8}
    assert registry.read_manifest(tmp_path / "versions" / "v1").threshold_selection == {"rule": "x"}


def test_activation_history_and_rollback_target(fitted_bundle, tmp_path):
    _save(fitted_bundle, tmp_path, "v1")
    assert registry.rollback_target(tmp_path) is None  # nothing was active before v1
    _save(fitted_bundle, tmp_path, "v2", activate=False)
    entry = registry.activate_version(tmp_path, "v2", reason="promoted", run="r1")
    assert entry["previous"] == "v1" and entry["run"] == "r1"
    assert registry.active_version(tmp_path) == "v2"
    assert registry.rollback_target(tmp_path) == "v1"
    registry.activate_version(tmp_path, "v1", reason="rollback")
    history = registry.activation_history(tmp_path)
    assert [(e["version"], e["previous"], e["reason"]) for e in history] == [
        ("v1", None, "trained"),
        ("v2", "v1", "promoted"),
        ("v1", "v2", "rollback"),
    ]
    with pytest.raises(ModelRefused, match="no model version"):
        registry.activate_version(tmp_path, "v9", reason="typo")
    assert registry.active_version(tmp_path) == "v1"


def test_runs_are_recorded_and_a_torn_line_is_skipped(tmp_path):
    registry.record_run(tmp_path, {"run": "r1", "decision": "promoted", "ap": np.float64(0.5)})
    with open(tmp_path / "runs.jsonl", "a") as handle:
        handle.write('{"run": "r2", "deci')  # a crash mid-append
    assert registry.list_runs(tmp_path) == [{"run": "r1", "decision": "promoted", "ap": 0.5}]
    registry.record_run(tmp_path, {"run": "r3"})
    assert [r["run"] for r in registry.list_runs(tmp_path)] == ["r1", "r3"]
    registry.record_run(tmp_path, {"run": "r4"})
    assert (tmp_path / "runs.jsonl").read_text().count("\n\n") == 0  # no blank lines
