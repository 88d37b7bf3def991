"""API fixtures: small trained models for the Handbook and Sparkov configs, in-memory
stand-ins for the worker's state view and the publisher, and a TestClient on a SQLite
store."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from aegis_app.core import config as config_files
from aegis_app.core.config import Config
from aegis_app.core.records import parse_datetime
from aegis_app.core.settings import Settings
from aegis_app.serving.api import ApiSettings, create_app
from aegis_app.serving.api.scoring import StateSource
from aegis_app.serving.store import Store
from models.detectors.isolation_forest import IsolationForestDetector
from models.detectors.logistic import LogisticRegressionDetector
from models.lifecycle import registry
from models.lifecycle.drift import reference_profile
from models.lifecycle.training import fit_bundle

TOKEN = "test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# One token per role besides TOKEN (the admin's AEGIS_API_TOKEN).
ROLE_TOKENS = {role: f"{role}-token-0123456789" for role in ("service", "analyst", "admin", "read")}


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {ROLE_TOKENS[role]}"}


CONFIGS = Path(__file__).resolve().parents[4] / "configs"
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def handbook() -> Config:
    return config_files.load(CONFIGS / "handbook.toml")


@pytest.fixture(scope="session")
def sparkov() -> Config:
    return config_files.load(CONFIGS / "sparkov.toml")


def _train(root: Path, config: Config, version: str, seed: int = 0) -> None:
    """Register one small active version of `config`'s features (random rows, 5% fraud;
    categorical features drawn from a few values)."""
    rng = np.random.default_rng(seed)
    n = 1500
    columns: dict[str, Any] = {}
    for feature in config.features:
        if feature.kind == "category":
            columns[feature.name] = rng.choice(["a", "b", "c"], n).astype(object)
        else:
            columns[feature.name] = rng.gamma(2.0, 10.0, size=n)
    frame = pd.DataFrame(columns)
    y = (rng.random(n) < 0.05).astype(int)
    first = config.feature_names[0]  # the amount in both presets
    frame.loc[y == 1, first] *= 8
    detectors = [
        IsolationForestDetector(n_estimators=50, max_samples=256),
        LogisticRegressionDetector(),
    ]
    bundle = fit_bundle(frame, y, version=version, detectors=detectors, config=config)
    numeric = [f.name for f in config.features if f.kind != "category"]
    reference = reference_profile(
        frame[numeric].to_numpy(float), numeric, bundle.score(bundle.matrix(frame))["ensemble"]
    )
    window = {"start": "2018-04-01", "days": 7}
    registry.save(bundle, root, window, {"auc": 0.5}, drift_reference=reference, config=config)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory, handbook) -> Path:
    """A registry with one small active version of the Handbook features."""
    root = tmp_path_factory.mktemp("api-models")
    _train(root, handbook, "vtest1")
    return root


@pytest.fixture(scope="session")
def sparkov_model_dir(tmp_path_factory, sparkov) -> Path:
    """A registry with one small active version of the Sparkov features."""
    root = tmp_path_factory.mktemp("api-models-sparkov")
    _train(root, sparkov, "vsparkov1")
    return root


class FakeState(StateSource):
    """The worker's packed states by (entity, key); remembers what was asked."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], bytes] = {}
        self.asked: list[tuple[str, str]] = []

    async def state(self, entity: str, key: str) -> bytes | None:
        self.asked.append((entity, key))
        return self.values.get((entity, key))


class FakePublisher:
    """Records (wire bytes, key) of each transaction, each Label and each (key, value) on
    aegis.rules."""

    def __init__(self) -> None:
        self.transactions: list[tuple[bytes, bytes]] = []
        self.labels: list = []
        self.rule_changes: list[tuple[bytes, bytes]] = []

    async def publish_transaction(self, payload: bytes, key: bytes) -> None:
        self.transactions.append((payload, key))

    async def publish_label(self, label) -> None:
        self.labels.append(label)

    async def publish_rule_change(self, key: bytes, value: bytes) -> None:
        self.rule_changes.append((key, value))

    async def ready(self) -> bool:
        return True

    async def stop(self) -> None:
        pass


def stored_decision(
    tx_id: str | int, action: str = "review", score: float = 0.97, **extra: Any
) -> dict:
    """A decision as the stream writes it on aegis.decisions (Handbook config)."""
    at = extra.pop("decided_at", T0 + timedelta(seconds=int(tx_id)))
    card = str(extra.pop("card", int(tx_id) % 3))
    merchant = str(extra.pop("merchant", 7))
    tx_datetime = extra.pop("tx_datetime", "2018-04-01 00:00:31")
    return {
        "transaction_id": str(tx_id),
        "card": card,
        "merchant": merchant,
        "amount": 12.5,
        "ts": parse_datetime(tx_datetime),
        "tx_datetime": tx_datetime,
        "fields": {},
        "entities": {"card": card, "terminal": merchant},
        "action": action,
        "score": score,
        "scores": {"isolation_forest": 0.41, "ensemble": score},
        "reasons": ["MODEL score"],
        "model_version": "v1",
        "features": {"TX_AMOUNT": 12.5, "CUSTOMER_ID_NB_TX_1DAY_WINDOW": 2.0},
        "ingested_ms": 1_795_000_000_000,
        "decided_at": at.isoformat(timespec="milliseconds"),
        **extra,
    }


@pytest.fixture
def api_store(tmp_path) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path}/api.db")
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def make_client(model_dir, sparkov_model_dir, handbook, sparkov, api_store):
    """make_client(open_reads=False, publisher=None, token=TOKEN, config="handbook",
    **api) -> (client, state, publisher); config "sparkov" scores with the Sparkov model;
    every role has its token (ROLE_TOKENS); `api` sets other ApiSettings fields."""
    opened: list[TestClient] = []
    presets: Mapping[str, tuple[Config, Path]] = {
        "handbook": (handbook, model_dir),
        "sparkov": (sparkov, sparkov_model_dir),
    }

    def make(
        open_reads: bool = False,
        publisher=None,
        token: str | None = TOKEN,
        config: str = "handbook",
        **options: Any,
    ):
        chosen, models = presets[config]
        settings = Settings(
            model_dir=models, kafka_broker="kafka://127.0.0.1:1", config=chosen.path
        )
        api = ApiSettings(
            token=token,
            open_reads=open_reads,
            worker_url="http://127.0.0.1:1",
            role_tokens=dict(ROLE_TOKENS) if token else {},
            **options,
        )
        state = FakeState()
        publisher = publisher or FakePublisher()
        app = create_app(
            settings, api, store=api_store, publisher=publisher, state=state, run_sink=False
        )
        client = TestClient(app)
        client.__enter__()
        opened.append(client)
        return client, state, publisher

    yield make
    for client in opened:
        client.__exit__(None, None, None)
