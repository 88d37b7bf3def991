"""The real REST API application (aegis_app.serving.api.create_app) over a seeded SQLite store,
with the broker, the worker and the sink stubbed: for the page's contract and browser tests.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from aegis_app.core.config import Config
from aegis_app.serving.api.scoring import StateSource
from tables.engine.stream import StreamEngine
from tests.dashboard.sample_data import decisions, models_body


class RecordingPublisher:
    """Stands in for KafkaPublisher: keeps what would go to aegis.transactions/labels."""

    def __init__(self, published: list) -> None:
        self.published = published

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def ready(self) -> bool:
        return True

    async def publish_transaction(self, payload: bytes, key: bytes) -> None:
        self.published.append(("transaction", payload))

    async def publish_label(self, label) -> None:
        self.published.append(("label", label))

    async def publish_rule_change(self, key: bytes, value: bytes | None) -> None:
        self.published.append(("rule", (key, value)))


class StubWorkerState(StateSource):
    """Stands in for the worker's state view: each entity's state as the stream would hold
    it after the seeded decisions' transactions (the config's own engine builds it)."""

    def __init__(self, rows: list[dict], config: Config) -> None:
        engine = StreamEngine(config)
        self.states: dict[tuple[str, str], bytes] = {}
        for row in sorted(rows, key=lambda r: r["ts"]):
            record = {
                "transaction_id": row["transaction_id"],
                "card": row["card"],
                "merchant": row["merchant"],
                "amount": row["amount"],
                "ts": row["ts"],
                "label": None,
                **row["fields"],
            }
            keys = engine.keys(record)
            current = {e: self.states.get((e, k)) for e, k in keys.items() if k is not None}
            _features, new_states = engine.observe(record, current)
            for entity, value in new_states.items():
                self.states[(entity, keys[entity])] = value

    async def state(self, entity: str, key: str) -> bytes | None:
        return self.states.get((entity, key))

    async def healthy(self) -> bool:
        return True

    async def close(self) -> None:
        return None


def seed_model_dir(model_dir: Path) -> None:
    """A registry entry for the models panel, with the PR-curve image `aegis thresholds`
    would write (the artifact itself is absent: the API only reads manifests here)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    version = models_body()["versions"][0]
    folder = model_dir / "versions" / version["version"]
    folder.mkdir(parents=True)
    manifest = {k: v for k, v in version.items() if k != "active"}
    manifest["holdout_metrics"] = {
        k: v for k, v in manifest["holdout_metrics"].items() if k != "pr_curve"
    }
    manifest.update(artifacts={"bundle.joblib": "0" * 64}, format=2)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (model_dir / "ACTIVE").write_text(version["version"])
    curve = version["holdout_metrics"]["pr_curve"]
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
    ax.plot(curve["recall"], curve["precision"], color="#1f77b4")
    ax.set_xlabel("Recall")
    ax.set_ylabel("Precision")
    ax.set_title(f"Hold-out PR curve, {version['version']}")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(folder / "pr_thresholds.png")
    plt.close(fig)


def build_api(
    tmp_path: Path, token: str, n: int = 60, **api_options: Any
) -> tuple[Any, Any, Any, list, Path]:
    """(app, store, metrics, published labels and rule changes, model dir) with `n` alerts, a
    third labelled; `api_options` are ApiSettings fields (e.g. rule_alert_budget)."""
    from aegis_app.core.settings import Settings
    from aegis_app.serving.api.app import create_app
    from aegis_app.serving.api.config import ApiSettings
    from aegis_app.serving.api.metrics import Metrics
    from aegis_app.serving.store.repository import Store

    model_dir = tmp_path / "models"
    seed_model_dir(model_dir)
    db_url = f"sqlite:///{tmp_path / 'aegis.db'}"
    store = Store(db_url)
    rows = decisions(n)
    store.upsert_decisions(rows)
    for row in rows:
        if row["label"]:
            store.record_label(
                row["transaction_id"],
                1 if row["label"] == "fraud" else 0,
                analyst=row["labelled_by"],
                at=datetime.fromisoformat(row["labelled_at"]),
            )
    settings = Settings(model_dir=model_dir, db_url=db_url)
    metrics = Metrics()
    metrics.decisions.labels(action="allow").inc(24_000)
    for row in rows:
        metrics.decisions.labels(action=row["action"]).inc()
    published: list = []
    app = create_app(
        settings,
        ApiSettings(token=token, **api_options),
        store=store,
        publisher=RecordingPublisher(published),
        state=StubWorkerState(rows, settings.load_config()),
        run_sink=False,
        metrics=metrics,
    )
    return app, store, metrics, published, model_dir


@contextmanager
def page_client(app: Any, token: str) -> Iterator[Any]:
    """The page's AegisClient talking to `app` in process (no socket): what the page sends
    and what the API answers, without a server."""
    from fastapi.testclient import TestClient

    from dashboard.client import AegisClient

    with TestClient(app, base_url="http://api.test") as http:
        http.headers["Authorization"] = f"Bearer {token}"
        client = AegisClient("http://api.test", token)
        client._http = http  # the ASGI app instead of a socket
        yield client
