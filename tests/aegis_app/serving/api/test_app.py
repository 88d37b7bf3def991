"""The API with TestClient: authentication, validation (422 naming the field, nothing
written), synchronous decisions from the stream's state, alerts paging, labels, models,
health and metrics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aegis_app.core.records import validate
from aegis_app.serving.api.scoring import features_from_state
from models.decisions.decision import build_decisions
from models.decisions.policy import Rules
from models.lifecycle import registry
from tables.features import CardState
from tests.aegis_app.serving.api.conftest import AUTH
from tests.aegis_app.serving.store.test_repository import decision

TX = {
    "transaction_id": 42,
    "tx_datetime": "2018-04-10 10:00:00",
    "customer_id": 5,
    "terminal_id": 7,
    "tx_amount": 125.5,
}


def test_health_is_open_and_metrics_need_a_token(make_client):
    client, _, _ = make_client()
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/metrics").status_code == 401
    body = client.get("/metrics", headers=AUTH).text
    assert "aegis_api_request_duration_seconds" in body
    assert 'aegis_active_model_info{version="vtest1"}' in body


def test_readyz_reports_each_check(make_client):
    client, _, _ = make_client()
    body = client.get("/readyz").json()
    assert body["ready"] and body["checks"] == {"broker": True, "model": True, "store": True}


@pytest.mark.parametrize(
    "method,path",
    [
        ("post", "/v1/transactions"),
        ("post", "/v1/alerts/1/label"),
        ("get", "/v1/alerts"),
        ("get", "/v1/alerts/1"),
        ("get", "/v1/cards/1"),
        ("get", "/v1/models"),
    ],
)
def test_token_required(make_client, method, path):
    client, _, publisher = make_client()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
        response = client.request(method, path, headers=headers, json={})
        assert response.status_code == 401, (path, headers)
        assert response.headers["www-authenticate"] == "Bearer"
    assert not publisher.transactions


def test_open_reads_still_protect_writes(make_client):
    client, _, _ = make_client(open_reads=True)
    assert client.get("/v1/alerts").status_code == 200
    assert client.get("/v1/models").status_code == 200
    assert client.post("/v1/transactions", json=TX).status_code == 401
    assert client.post("/v1/alerts/1/label", json={"label": "fraud"}).status_code == 401


def test_no_configured_token_refuses_everyone(make_client):
    client, _, _ = make_client(token=None)
    assert client.get("/v1/alerts", headers={"Authorization": "Bearer "}).status_code == 401


@pytest.mark.parametrize(
    "change,field",
    [
        ({"tx_amount": -1}, "tx_amount"),
        ({"tx_amount": "abc"}, "tx_amount"),
        ({"tx_amount": None}, "tx_amount"),
        ({"tx_datetime": "yesterday"}, "tx_datetime"),
        ({"customer_id": -3}, "customer_id"),
        ({"terminal_id": 1.5}, "terminal_id"),
        ({"transaction_id": 2**64}, "transaction_id"),
        ({"channel": 5}, "channel"),
        ({"tx_fraud": 1}, "tx_fraud"),
    ],
)
def test_bad_transaction_is_422_naming_the_field_and_writes_nothing(make_client, change, field):
    client, _, publisher = make_client()
    response = client.post("/v1/transactions", json={**TX, **change}, headers=AUTH)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["field"] == field and body["detail"].startswith(field)
    assert not publisher.transactions


def test_body_must_be_a_json_object(make_client):
    client, _, publisher = make_client()
    for content in (b"[1, 2]", b"{not json"):
        response = client.post("/v1/transactions", content=content, headers=AUTH)
        assert response.status_code == 422 and response.json()["field"] == "body"
    assert not publisher.transactions


def test_decision_uses_the_stream_state_and_is_published(make_client, model_dir):
    client, state, publisher = make_client()
    earlier = CardState()
    earlier.observe(40, validate(TX).ts - 3600, 20.0, 7)
    earlier.observe(41, validate(TX).ts - 60, 25.0, 8)
    state.cards[5] = earlier.to_value()
    response = client.post("/v1/transactions", json=TX, headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["published"] and body["model_version"] == "vtest1"
    assert body["features"]["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] == 3.0
    assert body["action"] in ("allow", "review", "block")
    # The same computation the stream does, by hand.
    tx = validate(TX)
    features = features_from_state(tx, earlier.to_value(), None, 7)
    bundle = registry.load(model_dir)
    expected = build_decisions(bundle, Rules(), [({**tx.to_wire(), "ts": tx.ts}, features, 0)])
    assert body["score"] == pytest.approx(expected[0]["score"], abs=1e-12)
    assert body["features"] == features
    # The worker's state was not written to (the API works on copies).
    assert CardState.from_value(state.cards[5]).ids == [40, 41]
    assert [t.transaction_id for t in publisher.transactions] == [42]
    # and the time went somewhere the operator can see
    metrics = client.get("/metrics", headers=AUTH).text
    for stage in ("features", "score", "publish"):
        assert f'aegis_api_scoring_stage_seconds_count{{stage="{stage}"}} 1.0' in metrics


def test_unavailable_worker_is_503(make_client):
    client, state, publisher = make_client()

    async def broken(_):
        from aegis_app.serving.api.scoring import Unavailable

        raise Unavailable("worker down")

    state.card = broken
    response = client.post("/v1/transactions", json=TX, headers=AUTH)
    assert response.status_code == 503 and "worker down" in response.json()["detail"]
    # The hand-off to the stream runs alongside the scoring, so the stream still gets the
    # transaction and decides it once (a retry with the same id is recorded once too).
    assert [t.transaction_id for t in publisher.transactions] == [TX["transaction_id"]]


def test_unavailable_broker_is_503_even_with_a_decision(make_client):
    from aegis_app.serving.api.scoring import Unavailable

    class DownPublisher:
        transactions: list = []

        async def publish_transaction(self, tx) -> None:
            raise Unavailable("broker down")

    client, _, _ = make_client(publisher=DownPublisher())
    response = client.post("/v1/transactions", json=TX, headers=AUTH)
    assert response.status_code == 503 and "broker down" in response.json()["detail"]


def _seed(store, n: int = 30):
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    store.upsert_decisions(
        [
            decision(
                i,
                ("allow", "review", "block")[i % 3],
                score=i / 100,
                decided_at=t0 + timedelta(minutes=i),
                customer_id=i % 4,
            )
            for i in range(1, n + 1)
        ]
    )
    return t0


def test_alerts_filters_and_paging(make_client, api_store):
    client, _, _ = make_client()
    t0 = _seed(api_store)
    body = client.get("/v1/alerts", params={"limit": 500}, headers=AUTH).json()
    ids = [a["transaction_id"] for a in body["items"]]
    assert ids == [i for i in range(30, 0, -1) if i % 3]  # review + block, newest first
    body = client.get("/v1/alerts", params={"action": "block", "limit": 3}, headers=AUTH).json()
    assert [a["transaction_id"] for a in body["items"]] == [29, 26, 23]
    page2 = client.get(
        "/v1/alerts",
        params={"action": "block", "limit": 3, "cursor": body["next_cursor"]},
        headers=AUTH,
    ).json()
    assert [a["transaction_id"] for a in page2["items"]] == [20, 17, 14]
    by_offset = client.get(
        "/v1/alerts", params={"action": "block", "limit": 3, "offset": 3}, headers=AUTH
    ).json()
    assert by_offset["items"] == page2["items"]
    params = {
        "action": ["review", "allow"],
        "min_score": 0.1,
        "max_score": 0.2,
        "since": (t0 + timedelta(minutes=12)).isoformat(),
        "until": (t0 + timedelta(minutes=19)).isoformat(),
    }
    body = client.get("/v1/alerts", params=params, headers=AUTH).json()
    assert [a["transaction_id"] for a in body["items"]] == [18, 16, 15, 13, 12]
    assert (
        client.get("/v1/alerts", params={"status": "labelled"}, headers=AUTH).json()["items"] == []
    )


@pytest.mark.parametrize(
    "params,field",
    [
        ({"limit": 501}, "limit"),
        ({"limit": 0}, "limit"),
        ({"status": "closed"}, "status"),
        ({"action": "maybe"}, "action.0"),
        ({"min_score": "x"}, "min_score"),
        ({"since": "not a date"}, "since"),
        ({"cursor": "bogus"}, "cursor"),
    ],
)
def test_bad_alert_queries_are_422(make_client, params, field):
    client, _, _ = make_client()
    response = client.get("/v1/alerts", params=params, headers=AUTH)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field


def test_one_alert_and_404(make_client, api_store):
    client, _, _ = make_client()
    _seed(api_store, 3)
    body = client.get("/v1/alerts/2", headers=AUTH).json()
    assert body["transaction_id"] == 2 and body["status"] == "open" and body["features"]
    assert client.get("/v1/alerts/999", headers=AUTH).status_code == 404
    assert client.get("/v1/alerts/-1", headers=AUTH).status_code == 422


def test_label_flow(make_client, api_store):
    client, _, publisher = make_client()
    _seed(api_store, 3)
    response = client.post(
        "/v1/alerts/2/label",
        json={"label": "fraud", "note": "card reported stolen", "analyst": "ana"},
        headers=AUTH,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["published"] and body["alert"]["status"] == "labelled"
    assert body["alert"]["label"] == "fraud" and body["alert"]["labelled_by"] == "ana"
    [label] = publisher.labels
    assert (label.transaction_id, label.label, label.source) == (2, 1, "analyst")
    assert label.terminal_id == 7 and label.tx_datetime == "2018-04-01 00:00:31"
    assert label.customer_id == 2 and label.note == "card reported stolen"
    assert client.get("/v1/alerts/2", headers=AUTH).json()["label"] == "fraud"
    listed = client.get("/v1/alerts", params={"status": "labelled"}, headers=AUTH).json()
    assert [a["transaction_id"] for a in listed["items"]] == [2]


def test_label_errors(make_client, api_store):
    client, _, publisher = make_client()
    _seed(api_store, 3)
    assert (
        client.post("/v1/alerts/999/label", json={"label": "fraud"}, headers=AUTH).status_code
        == 404
    )
    bad = client.post("/v1/alerts/2/label", json={"label": "maybe"}, headers=AUTH)
    assert bad.status_code == 422 and bad.json()["field"] == "label"
    assert api_store.get_decision(2)["status"] == "open"
    assert not publisher.labels


def test_card_view(make_client, api_store):
    client, state, _ = make_client()
    _seed(api_store, 12)
    card = CardState()
    card.observe(1, 1_000_000, 10.0, 3)
    card.observe(2, 1_000_100, 30.0, 4)
    state.cards[1] = card.to_value()
    body = client.get("/v1/cards/1", headers=AUTH).json()
    assert body["found"] and body["transactions_30d"] == 2
    assert body["features"]["CUSTOMER_ID_AVG_AMOUNT_1DAY_WINDOW"] == 20.0
    assert [d["transaction_id"] for d in body["recent_decisions"]] == [9, 5, 1]
    empty = client.get("/v1/cards/3", headers=AUTH).json()
    assert not empty["found"] and empty["features"] is None


def test_models(make_client):
    client, _, _ = make_client()
    body = client.get("/v1/models", headers=AUTH).json()
    assert body["active_version"] == "vtest1"
    [version] = body["versions"]
    assert version["active"] and version["holdout_metrics"] == {"auc": 0.5}
    assert set(version["thresholds"]) == {"review", "block"}


def test_openapi_documents_every_endpoint_with_errors(make_client):
    client, _, _ = make_client()
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path in (
        "/v1/transactions",
        "/v1/alerts",
        "/v1/alerts/{transaction_id}",
        "/v1/alerts/{transaction_id}/label",
        "/v1/cards/{card_id}",
        "/v1/models",
        "/healthz",
        "/readyz",
        "/metrics",
    ):
        assert path in paths
        for operation in paths[path].values():
            assert "200" in operation["responses"]
    assert "ErrorOut" in spec["components"]["schemas"]
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    body = paths["/v1/transactions"]["post"]["requestBody"]["content"]["application/json"]
    assert set(body["schema"]["required"]) >= {"transaction_id", "tx_amount", "tx_datetime"}
