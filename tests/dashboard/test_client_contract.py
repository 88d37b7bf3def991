"""dashboard.client against the real API application (in-process, no network): the page's
calls and the API's answers agree. Fails when either side changes the contract."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from dashboard import shaping
from dashboard.client import AegisClient, ApiNotFound, ApiUnauthorized

NAMES = shaping.RecordNames()  # the page's titles do not matter here, the fields do

TOKEN = "contract-token"
pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")


@pytest.fixture
def api(tmp_path) -> Iterator[tuple[AegisClient, object, list]]:
    pytest.importorskip("aegis_app.serving.api.app")
    from fastapi.testclient import TestClient

    from tests.dashboard.api_stack import build_api

    app, store, _metrics, published, _model_dir = build_api(tmp_path, TOKEN)
    with TestClient(app, base_url="http://api.test") as http:
        http.headers["Authorization"] = f"Bearer {TOKEN}"
        client = AegisClient("http://api.test", TOKEN)
        client._http = http  # the ASGI app instead of a socket
        yield client, store, published
    store.close()


def test_queue_filters_and_rows(api):
    client, _store, _ = api
    page = client.alerts(status="open", limit=10)
    assert len(page["items"]) == 10 and page["more"] is True
    row = page["items"][0]
    for name in (
        "transaction_id",
        "card",
        "merchant",
        "amount",
        "tx_datetime",
        "fields",
        "entities",
        "action",
        "score",
        "scores",
        "reasons",
        "features",
        "decided_at",
        "status",
        "label",
    ):
        assert name in row
    assert isinstance(row["transaction_id"], str) and isinstance(row["card"], str)
    frame = shaping.queue_frame(page["items"], NAMES)
    assert frame["Label"].tolist() == ["open"] * 10
    assert frame["card"].tolist() == [r["card"] for r in page["items"]]

    blocks = client.alerts(action="block", min_score=0.999, limit=500)["items"]
    assert blocks and all(r["action"] == "block" and r["score"] >= 0.999 for r in blocks)
    since = (datetime.now(UTC) - timedelta(minutes=15)).isoformat(timespec="seconds")
    recent = client.alerts(since=since, limit=500)["items"]
    assert 0 < len(recent) < 60
    labelled = client.alerts(status="labelled", limit=500)["items"]
    assert labelled and all(shaping.normalise_label(r["label"]) for r in labelled)


def test_label_card_models_metrics(api):
    client, store, published = api
    tx = client.alerts(status="open", limit=1)["items"][0]["transaction_id"]
    client.label(tx, "legitimate", note="known customer", analyst="ana")
    row = client.alert(tx)
    assert row["status"] == "labelled" and row["label"] == "legitimate"
    assert store.get_decision(tx)["label"] == 0
    # the label the API publishes carries the stored decision's card and entity keys
    [(kind, label)] = published
    assert kind == "label" and label.transaction_id == tx and label.label == 0
    assert label.card == row["card"]
    assert label.entities == {"card": row["card"], "terminal": row["merchant"]}
    [stored_label] = store.labels_for(tx)
    assert stored_label["entities"] == label.entities and stored_label["card"] == row["card"]

    card = client.card(row["card"])
    assert card["card"] == row["card"] and card["events"] >= 1  # the stub worker's state
    recent = shaping.recent_frame(card["recent_decisions"], NAMES)
    assert tx in recent["transaction_id"].tolist()

    active = shaping.active_model(client.models())
    assert active["version"] and active["thresholds"]
    counts = shaping.throughput_counts(shaping.parse_prometheus(client.metrics_text()))
    assert counts["transactions"] >= 24_000 and counts["alerts"] == 60


def test_errors(api):
    client, _store, _ = api
    with pytest.raises(ApiNotFound):
        client.alert("no-such-tx")
    client._http.headers["Authorization"] = "Bearer wrong"
    with pytest.raises(ApiUnauthorized):
        client.alerts()
