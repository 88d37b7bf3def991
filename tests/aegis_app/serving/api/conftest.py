"""API fixtures: a small trained model, in-memory stand-ins for the worker state and the
publisher, and a TestClient on a SQLite store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from aegis_app.core.settings import Settings
from aegis_app.serving.api import ApiSettings, create_app
from aegis_app.serving.api.scoring import RawStateSource
from aegis_app.serving.store import Store
from models.detectors.isolation_forest import IsolationForestDetector
from models.detectors.logistic import LogisticRegressionDetector
from models.lifecycle import registry
from models.lifecycle.drift import reference_profile
from models.lifecycle.training import fit_bundle
from tables.features import ALL_FEATURES

TOKEN = "test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """A registry with one small active version (random features, 5% fraud)."""
    root = tmp_path_factory.mktemp("api-models")
    rng = np.random.default_rng(0)
    X = rng.gamma(2.0, 10.0, size=(1500, len(ALL_FEATURES)))
    y = (rng.random(1500) < 0.05).astype(int)
    X[y == 1, 0] *= 8  # fraud: larger amounts
    detectors = [
        IsolationForestDetector(n_estimators=50, max_samples=256),
        LogisticRegressionDetector(),
    ]
    bundle = fit_bundle(
        X, y, version="vtest1", detectors=detectors, feature_names=list(ALL_FEATURES)
    )
    reference = reference_profile(X, list(ALL_FEATURES), bundle.score(X)["ensemble"])
    window = {"start": "2018-04-01", "days": 7}
    registry.save(bundle, root, window, {"auc": 0.5}, drift_reference=reference)
    return root


class FakeState(RawStateSource):
    """The worker's raw table values, by id."""

    def __init__(self) -> None:
        self.cards: dict[int, list] = {}
        self.terminals: dict[int, list] = {}

    async def card(self, card_id: int):
        return self.cards.get(card_id)

    async def terminal(self, terminal_id: int):
        return self.terminals.get(terminal_id)


class FakePublisher:
    def __init__(self) -> None:
        self.transactions: list = []
        self.labels: list = []

    async def publish_transaction(self, tx) -> None:
        self.transactions.append(tx)

    async def publish_label(self, label) -> None:
        self.labels.append(label)

    async def ready(self) -> bool:
        return True

    async def stop(self) -> None:
        pass


@pytest.fixture
def api_store(tmp_path) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path}/api.db")
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def make_client(model_dir, api_store):
    """make_client(open_reads=False, publisher=None) -> (client, state, publisher)."""
    opened: list[TestClient] = []

    def make(open_reads: bool = False, publisher=None, token: str | None = TOKEN):
        settings = Settings(model_dir=model_dir, kafka_broker="kafka://127.0.0.1:1")
        api = ApiSettings(token=token, open_reads=open_reads, worker_url="http://127.0.0.1:1")
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
