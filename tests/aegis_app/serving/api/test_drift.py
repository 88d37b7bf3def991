"""GET /v1/drift and the aegis_drift_* gauges, on a real SQLite store and a registered model
whose manifest holds a drift reference."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from aegis_app.core import config as config_files
from aegis_app.core.settings import Settings
from aegis_app.serving.api import ApiSettings, create_app
from aegis_app.serving.store import Store
from models.detectors.isolation_forest import IsolationForestDetector
from models.detectors.logistic import LogisticRegressionDetector
from models.lifecycle import registry
from models.lifecycle.drift import PSI_SIGNIFICANT, reference_profile
from models.lifecycle.training import fit_bundle
from tests.aegis_app.serving.api.conftest import (
    AUTH,
    CONFIGS,
    TOKEN,
    FakePublisher,
    FakeState,
    stored_decision,
)

HANDBOOK = config_files.load(CONFIGS / "handbook.toml")
NAMES = list(HANDBOOK.feature_names)
DAY0 = datetime(2018, 9, 1)
PER_DAY = 240


def features(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).gamma(2.0, 10.0, size=(n, len(NAMES)))


@pytest.fixture(scope="module")
def drift_model(tmp_path_factory) -> tuple[Path, object]:
    """A registry whose active version has a drift reference; returns (dir, bundle)."""
    root = tmp_path_factory.mktemp("drift-models")
    X = features(2000, seed=0)
    y = (np.random.default_rng(1).random(len(X)) < 0.05).astype(int)
    X[y == 1, 0] *= 8
    detectors = [
        IsolationForestDetector(n_estimators=30, max_samples=256),
        LogisticRegressionDetector(),
    ]
    bundle = fit_bundle(X, y, version="vdrift", detectors=detectors, config=HANDBOOK)
    reference = reference_profile(X, NAMES, bundle.score(X)["ensemble"])
    window = {"start": "2018-08-01", "days": 7}
    registry.save(bundle, root, window, drift_reference=reference, config=HANDBOOK)
    return root, bundle


def seed_days(store: Store, bundle, days: int = 7, shift_last: float = 1.0) -> None:
    """PER_DAY decisions a day from DAY0, features like training; the last day's amounts
    times `shift_last`. A sixth of the rows were scored by an older model."""
    rows = []
    for day in range(days):
        X = features(PER_DAY, seed=100 + day)
        if day == days - 1:
            X[:, 0] *= shift_last
        scores = bundle.score(X)["ensemble"]
        for i in range(PER_DAY):
            when = DAY0 + timedelta(days=day, seconds=int(i * 86_400 / PER_DAY))
            rows.append(
                stored_decision(
                    day * PER_DAY + i,
                    "allow",
                    score=float(scores[i]),
                    tx_datetime=when.strftime("%Y-%m-%d %H:%M:%S"),
                    features=dict(zip(NAMES, map(float, X[i]))),
                    model_version="vold" if i % 6 == 0 else "vdrift",
                )
            )
    store.upsert_decisions(rows)


@pytest.fixture
def open_client(api_store) -> Iterator:
    """open_client(model_dir, refresh_s=None) -> a started TestClient on api_store."""
    opened: list[TestClient] = []

    def make(model_dir: Path, refresh_s: float | None = None) -> TestClient:
        app = create_app(
            Settings(model_dir=model_dir, kafka_broker="kafka://127.0.0.1:1"),
            ApiSettings(token=TOKEN, worker_url="http://127.0.0.1:1"),
            store=api_store,
            publisher=FakePublisher(),
            state=FakeState(),
            run_sink=False,
            drift_refresh_s=refresh_s,
        )
        client = TestClient(app)
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


def test_windows_end_at_the_latest_event_and_the_shifted_day_alerts(
    drift_model, api_store, open_client
):
    model_dir, bundle = drift_model
    seed_days(api_store, bundle, shift_last=3.0)
    client = open_client(model_dir)
    response = client.get("/v1/drift", headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == "vdrift" and body["hours"] == 24
    assert body["threshold"] == PSI_SIGNIFICANT and body["reference_rows"] == 2000
    latest = (DAY0 + timedelta(days=7) - timedelta(seconds=360)).strftime("%Y-%m-%d %H:%M:%S")
    assert body["latest_tx_datetime"] == latest
    windows = body["windows"]
    assert len(windows) == 7
    # Oldest first; consecutive; the newest ends one second after the latest event.
    assert windows[-1]["end"] == (DAY0 + timedelta(days=7) - timedelta(seconds=359)).isoformat(
        sep=" "
    )
    for older, newer in zip(windows, windows[1:]):
        assert older["end"] == newer["start"]
    # Every window holds one day of decisions; score PSI reads only the active model's.
    assert [w["n"] for w in windows] == [PER_DAY] * 7
    assert all(w["n_scores"] == PER_DAY - PER_DAY // 6 for w in windows)
    assert set(windows[0]["feature_psi"]) == set(NAMES)
    for window in windows[:-1]:
        assert not window["alert"], window
        assert window["max_feature_psi"] < PSI_SIGNIFICANT
    last = windows[-1]
    assert last["alert"] and body["alert"]
    assert last["max_feature"] == "TX_AMOUNT"
    assert last["top_features"][0]["feature"] == "TX_AMOUNT"
    assert last["feature_psi"]["TX_AMOUNT"] > PSI_SIGNIFICANT
    assert last["score_psi"] is not None

    shorter = client.get("/v1/drift", params={"hours": 48, "windows": 2}, headers=AUTH).json()
    assert [w["n"] for w in shorter["windows"]] == [2 * PER_DAY] * 2
    assert shorter["hours"] == 48


def test_no_decisions_is_an_empty_answer(drift_model, open_client):
    client = open_client(drift_model[0])
    body = client.get("/v1/drift", headers=AUTH).json()
    assert body["windows"] == [] and body["latest_tx_datetime"] is None
    assert body["alert"] is False


@pytest.mark.parametrize(
    "params,field",
    [
        ({"hours": 0}, "hours"),
        ({"hours": "day"}, "hours"),
        ({"hours": 24 * 32}, "hours"),
        ({"windows": 0}, "windows"),
        ({"windows": 91}, "windows"),
    ],
)
def test_bad_parameters_are_422(drift_model, open_client, params, field):
    client = open_client(drift_model[0])
    response = client.get("/v1/drift", params=params, headers=AUTH)
    assert response.status_code == 422
    assert response.json()["field"] == field


def test_token_required(drift_model, open_client):
    client = open_client(drift_model[0])
    assert client.get("/v1/drift").status_code == 401


def test_no_model_or_no_reference_is_503_saying_retrain(model_dir, open_client, tmp_path):
    # conftest's model, as a version registered before drift references existed
    old = tmp_path / "old-models"
    shutil.copytree(model_dir, old)
    for manifest in old.glob("versions/*/manifest.json"):
        data = json.loads(manifest.read_text())
        data["drift_reference"] = {}
        manifest.write_text(json.dumps(data))
    response = open_client(old).get("/v1/drift", headers=AUTH)
    assert response.status_code == 503
    assert "no drift reference" in response.json()["detail"]
    assert "aegis train" in response.json()["detail"]
    response = open_client(tmp_path / "empty").get("/v1/drift", headers=AUTH)
    assert response.status_code == 503
    assert "no active model" in response.json()["detail"]


def metric_values(text: str) -> dict[str, float]:
    values = {}
    for line in text.splitlines():
        if line.startswith("aegis_drift"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def test_gauges_follow_the_latest_window(drift_model, api_store, open_client):
    model_dir, bundle = drift_model
    seed_days(api_store, bundle, days=2, shift_last=3.0)
    client = open_client(model_dir, refresh_s=0.1)
    deadline = time.monotonic() + 20
    values: dict[str, float] = {}
    while time.monotonic() < deadline:
        values = metric_values(client.get("/metrics", headers=AUTH).text)
        if values.get("aegis_drift_alert") == 1.0:
            break
        time.sleep(0.1)
    assert values["aegis_drift_alert"] == 1.0, values
    assert values["aegis_drift_window_rows"] == PER_DAY
    assert values['aegis_drift_feature_psi{feature="TX_AMOUNT"}'] > PSI_SIGNIFICANT
    assert np.isfinite(values["aegis_drift_score_psi"])
    body = client.get("/v1/drift", params={"windows": 1}, headers=AUTH).json()
    assert values["aegis_drift_score_psi"] == pytest.approx(body["windows"][-1]["score_psi"])


def test_gauges_say_unknown_without_a_reference(model_dir, open_client):
    client = open_client(model_dir, refresh_s=0.1)
    time.sleep(0.3)
    values = metric_values(client.get("/metrics", headers=AUTH).text)
    assert np.isnan(values["aegis_drift_score_psi"])
    assert values["aegis_drift_alert"] == 0.0
    assert not any(name.startswith("aegis_drift_feature_psi{") for name in values)


def test_openapi_documents_drift(drift_model, open_client):
    spec = open_client(drift_model[0]).get("/openapi.json").json()
    operation = spec["paths"]["/v1/drift"]["get"]
    assert {"200", "401", "422", "503"} <= set(operation["responses"])
    assert {"DriftOut", "DriftWindowOut"} <= set(spec["components"]["schemas"])
