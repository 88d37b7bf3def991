"""The API with TestClient: authentication, the configured schema (OpenAPI, 422 naming the
column, nothing written), synchronous decisions from the stream's state, alerts paging,
labels, the card view, models, health and metrics."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pandas as pd
import pytest

from aegis_app.core.codec import RecordCodec
from aegis_app.core.source import SourceReader
from aegis_app.serving.api.scoring import Unavailable
from models.decisions.decision import build_decisions
from models.lifecycle import registry
from models.rules.rule import RuleSet
from models.rules.vocabulary import Vocabulary
from tables.engine.stream import StreamEngine
from tests.aegis_app.serving.api.conftest import AUTH, T0, stored_decision

TX = {
    "TRANSACTION_ID": 42,
    "TX_DATETIME": "2018-04-10 10:00:00",
    "CUSTOMER_ID": 5,
    "TERMINAL_ID": 7,
    "TX_AMOUNT": 125.5,
}
HANDBOOK_COLUMNS = {"TRANSACTION_ID", "TX_DATETIME", "CUSTOMER_ID", "TERMINAL_ID", "TX_AMOUNT"}


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


# ------------------------------------------------------------------ the configured schema


def test_openapi_shows_the_handbook_columns(make_client):
    client, _, _ = make_client()
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/v1/transactions"]["post"]["requestBody"]["content"]
    schema = body["application/json"]["schema"]
    assert set(schema["properties"]) == HANDBOOK_COLUMNS | {"TX_FRAUD"}
    assert set(schema["required"]) == HANDBOOK_COLUMNS
    assert schema["properties"]["TX_AMOUNT"]["type"] == "number"
    assert "%Y-%m-%d %H:%M:%S" in schema["properties"]["TX_DATETIME"]["description"]


def test_openapi_shows_the_sparkov_columns(make_client):
    client, _, _ = make_client(config="sparkov")
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/v1/transactions"]["post"]["requestBody"]["content"]
    schema = body["application/json"]["schema"]
    properties = schema["properties"]
    assert set(properties) == {
        "trans_num",
        "cc_num",
        "merchant",
        "amt",
        "trans_date_trans_time",
        "is_fraud",
        "category",
        "gender",
        "state",
        "city_pop",
        "dob",
        "lat",
        "long",
        "merch_lat",
        "merch_long",
    }
    assert set(schema["required"]) == {
        "trans_num",
        "cc_num",
        "merchant",
        "amt",
        "trans_date_trans_time",
    }
    assert {"type": "null"} in properties["category"]["anyOf"]
    assert properties["amt"]["type"] == "number"
    # times and dates carry their format as a pattern, so clients write what is accepted
    assert properties["trans_date_trans_time"]["pattern"].startswith("^[0-9]{4}-")
    assert {"type": "string", "pattern": "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"} in (
        properties["dob"]["anyOf"]
    )
    assert {"type": "number", "maximum": 90.0, "minimum": -90.0} in properties["lat"]["anyOf"]
    # the API docs name the columns behind the decision's roles
    assert "`card` is `cc_num`" in spec["info"]["description"]


@pytest.mark.parametrize(
    "change,field",
    [
        ({"TX_AMOUNT": -1}, "TX_AMOUNT"),
        ({"TX_AMOUNT": "abc"}, "TX_AMOUNT"),
        ({"TX_AMOUNT": None}, "TX_AMOUNT"),
        ({"TX_AMOUNT": 2e9}, "TX_AMOUNT"),
        ({"TX_DATETIME": "yesterday"}, "TX_DATETIME"),
        ({"TX_DATETIME": 1523354400}, "TX_DATETIME"),
        ({"CUSTOMER_ID": 1.5}, "CUSTOMER_ID"),
        ({"CUSTOMER_ID": ""}, "CUSTOMER_ID"),
        ({"TERMINAL_ID": True}, "TERMINAL_ID"),
        ({"TRANSACTION_ID": "x" * 300}, "TRANSACTION_ID"),
        ({"TX_FRAUD": 2}, "TX_FRAUD"),
        ({"CUSTOMER_ID": [5]}, "CUSTOMER_ID"),
    ],
)
def test_bad_transaction_is_422_naming_the_field_and_writes_nothing(make_client, change, field):
    client, state, publisher = make_client()
    response = client.post("/v1/transactions", json={**TX, **change}, headers=AUTH)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["field"] == field and body["detail"].startswith(f"{field}: "), body
    assert not publisher.transactions and not state.asked


def test_a_missing_column_is_named(make_client):
    client, _, publisher = make_client()
    body = {k: v for k, v in TX.items() if k != "TERMINAL_ID"}
    response = client.post("/v1/transactions", json=body, headers=AUTH)
    assert response.status_code == 422
    assert response.json() == {"detail": "TERMINAL_ID: missing", "field": "TERMINAL_ID"}
    assert not publisher.transactions


def test_body_must_be_a_json_object(make_client):
    client, _, publisher = make_client()
    for content in (b"[1, 2]", b"{not json", b'"text"'):
        response = client.post("/v1/transactions", content=content, headers=AUTH)
        assert response.status_code == 422 and response.json()["field"] == "body"
    assert not publisher.transactions


def test_other_columns_are_ignored_and_listed(make_client, handbook):
    client, _, publisher = make_client()
    response = client.post(
        "/v1/transactions", json={**TX, "channel": "web", "NOTE": 1}, headers=AUTH
    )
    assert response.status_code == 200, response.text
    assert response.json()["ignored_fields"] == ["NOTE", "channel"]
    [(payload, _)] = publisher.transactions
    assert set(RecordCodec(handbook).decode_fields(payload)) == HANDBOOK_COLUMNS | {"TX_FRAUD"}


# ------------------------------------------------------------------ scoring


def _history(config, rows: list[dict]) -> dict[tuple[str, str], bytes]:
    """The states the stream holds after it saw `rows` (in the user's schema)."""
    engine, reader = StreamEngine(config), SourceReader(config)
    states: dict[tuple[str, str], bytes] = {}
    for raw in rows:
        record = reader.record(raw)
        keys = engine.keys(record)
        current = {name: states.get((name, key)) for name, key in keys.items() if key}
        _, new = engine.observe(record, current)
        states.update({(name, keys[name]): value for name, value in new.items()})
    return states


def test_decision_uses_the_stream_state_and_is_published(make_client, model_dir, handbook):
    client, state, publisher = make_client()
    earlier = [
        {**TX, "TRANSACTION_ID": 40, "TX_DATETIME": "2018-04-10 09:00:00", "TX_AMOUNT": 20.0},
        {**TX, "TRANSACTION_ID": 41, "TX_DATETIME": "2018-04-10 09:59:00", "TERMINAL_ID": 8},
    ]
    state.values.update(_history(handbook, earlier))
    before = dict(state.values)
    response = client.post("/v1/transactions", json=TX, headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["published"] and body["model_version"] == "vtest1"
    assert (body["transaction_id"], body["card"], body["merchant"]) == ("42", "5", "7")
    assert body["entities"] == {"card": "5", "terminal": "7"}
    assert body["tx_datetime"] == "2018-04-10 10:00:00" and body["fields"] == {}
    assert body["features"]["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] == 3.0
    assert body["features"]["CUSTOMER_ID_NB_TERMINALS_1DAY_WINDOW"] == 2.0
    assert sorted(state.asked) == [("card", "5"), ("terminal", "7")]
    # The same computation the stream does, by hand.
    engine = StreamEngine(handbook)
    record = SourceReader(handbook).record(TX)
    features, _ = engine.observe(record, {"card": before[("card", "5")], "terminal": None})
    bundle = registry.load(model_dir)
    expected = build_decisions(
        bundle,
        RuleSet(),
        Vocabulary.from_config(handbook),
        [(record, features, 0)],
        entity_keys=engine.keys,
    )
    assert body["score"] == pytest.approx(expected[0]["score"], abs=1e-12)
    assert body["features"] == features
    # The worker's state was not written to (the API works on copies).
    assert state.values == before
    [(payload, key)] = publisher.transactions
    assert key == b"5" and RecordCodec(handbook).decode(payload) == record
    # and the time went somewhere the operator can see
    metrics = client.get("/metrics", headers=AUTH).text
    for stage in ("features", "score", "publish"):
        assert f'aegis_api_scoring_stage_seconds_count{{stage="{stage}"}} 1.0' in metrics


def _first_sparkov_row(path, sparkov) -> dict:
    """The slice's first row as a client would post it: JSON values, ids as text."""
    frame = pd.read_csv(path, nrows=1, dtype=SourceReader(sparkov).csv_dtypes())
    return json.loads(frame.to_json(orient="records"))[0]


def test_a_sparkov_row_is_scored_with_the_sparkov_features(make_client, sparkov, sparkov_slice):
    client, state, publisher = make_client(config="sparkov")
    row = _first_sparkov_row(sparkov_slice, sparkov)
    response = client.post("/v1/transactions", json=row, headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["transaction_id"] == row["trans_num"] and body["card"] == row["cc_num"]
    assert body["merchant"] == row["merchant"] and body["amount"] == row["amt"]
    assert body["model_version"] == "vsparkov1"
    assert body["fields"]["category"] == row["category"]
    assert body["fields"]["home.lat"] == row["lat"]
    assert body["entities"] == {
        "card": row["cc_num"],
        "merchant": row["merchant"],
        "category": row["category"],
    }
    assert list(body["features"]) == list(sparkov.feature_names)
    assert body["features"]["category"] == row["category"]  # a categorical feature: text
    assert "first" in body["ignored_fields"] and "unix_time" in body["ignored_fields"]
    assert sorted(state.asked) == sorted(body["entities"].items())
    [(payload, key)] = publisher.transactions
    assert key == row["cc_num"].encode()
    assert RecordCodec(sparkov).decode(payload)["transaction_id"] == row["trans_num"]


@pytest.mark.parametrize(
    "change,field",
    [
        ({"amt": "lots"}, "amt"),
        ({"dob": "28/12/1974"}, "dob"),
        ({"lat": 95.0}, "lat"),
        ({"city_pop": "many"}, "city_pop"),
        ({"category": 12}, "category"),
        ({"trans_date_trans_time": "2019-01-07T13:04:44"}, "trans_date_trans_time"),
    ],
)
def test_a_bad_sparkov_field_is_422_naming_it(make_client, sparkov, sparkov_slice, change, field):
    client, _, publisher = make_client(config="sparkov")
    row = {**_first_sparkov_row(sparkov_slice, sparkov), **change}
    response = client.post("/v1/transactions", json=row, headers=AUTH)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["field"] == field and body["detail"].startswith(f"{field}: "), body
    assert not publisher.transactions


def test_unavailable_worker_is_503(make_client):
    client, state, publisher = make_client()

    async def broken(entity, key):
        raise Unavailable("worker down")

    state.state = broken
    response = client.post("/v1/transactions", json=TX, headers=AUTH)
    assert response.status_code == 503 and "worker down" in response.json()["detail"]
    # The hand-off to the stream runs alongside the scoring, so the stream still gets the
    # transaction and decides it once (a retry with the same id is recorded once too).
    assert [key for _, key in publisher.transactions] == [b"5"]


def test_an_unreadable_state_is_503_naming_it(make_client):
    client, state, _ = make_client()
    state.values[("card", "5")] = b"\x00not a packed state"
    response = client.post("/v1/transactions", json=TX, headers=AUTH)
    assert response.status_code == 503
    assert "state" in response.json()["detail"]


def test_unavailable_broker_is_503_even_with_a_decision(make_client):
    class DownPublisher:
        transactions: list = []

        async def publish_transaction(self, payload, key) -> None:
            await asyncio.sleep(0)
            raise Unavailable("broker down")

    client, _, _ = make_client(publisher=DownPublisher())
    response = client.post("/v1/transactions", json=TX, headers=AUTH)
    assert response.status_code == 503 and "broker down" in response.json()["detail"]


# ------------------------------------------------------------------ alerts and labels


def _seed(store, n: int = 30):
    store.upsert_decisions(
        [
            stored_decision(
                i,
                ("allow", "review", "block")[i % 3],
                score=i / 100,
                decided_at=T0 + timedelta(minutes=i),
                card=i % 4,
            )
            for i in range(1, n + 1)
        ]
    )
    return T0


def test_alerts_filters_and_paging(make_client, api_store):
    client, _, _ = make_client()
    t0 = _seed(api_store)
    body = client.get("/v1/alerts", params={"limit": 500}, headers=AUTH).json()
    ids = [a["transaction_id"] for a in body["items"]]
    assert ids == [str(i) for i in range(30, 0, -1) if i % 3]  # review + block, newest first
    body = client.get("/v1/alerts", params={"action": "block", "limit": 3}, headers=AUTH).json()
    assert [a["transaction_id"] for a in body["items"]] == ["29", "26", "23"]
    page2 = client.get(
        "/v1/alerts",
        params={"action": "block", "limit": 3, "cursor": body["next_cursor"]},
        headers=AUTH,
    ).json()
    assert [a["transaction_id"] for a in page2["items"]] == ["20", "17", "14"]
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
    assert [a["transaction_id"] for a in body["items"]] == ["18", "16", "15", "13", "12"]
    by_card = client.get("/v1/alerts", params={"card": "1", "limit": 500}, headers=AUTH).json()
    assert [a["transaction_id"] for a in by_card["items"]] == ["29", "25", "17", "13", "5", "1"]
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
        ({"card": "x" * 300}, "card"),
        ({"shadow": "true"}, "shadow"),  # only with a rule
        ({"rule": 0}, "rule"),
        ({"rule": "x"}, "rule"),
        ({"rule": 2**31}, "rule"),
        ({"rule": 1, "shadow": "maybe"}, "shadow"),
        ({"merchant": ""}, "merchant"),
        ({"q": "x" * 300}, "q"),
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
    assert body["transaction_id"] == "2" and body["status"] == "open" and body["features"]
    assert body["card"] == "2" and body["entities"] == {"card": "2", "terminal": "7"}
    missing = client.get("/v1/alerts/999", headers=AUTH)
    assert missing.status_code == 404 and "999" in missing.json()["detail"]


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
    assert (label.transaction_id, label.label, label.source) == ("2", 1, "analyst")
    # the stored decision's entity keys take the label to each entity's state
    assert label.entities == {"card": "2", "terminal": "7"} and label.card == "2"
    assert label.tx_datetime == "2018-04-01 00:00:31" and label.note == "card reported stolen"
    assert label.known_at == body["known_at"]
    assert client.get("/v1/alerts/2", headers=AUTH).json()["label"] == "fraud"
    listed = client.get("/v1/alerts", params={"status": "labelled"}, headers=AUTH).json()
    assert [a["transaction_id"] for a in listed["items"]] == ["2"]


def test_label_errors(make_client, api_store):
    client, _, publisher = make_client()
    _seed(api_store, 3)
    missing = client.post("/v1/alerts/999/label", json={"label": "fraud"}, headers=AUTH)
    assert missing.status_code == 404
    assert missing.json()["detail"].startswith("no stored decision for transaction '999'")
    bad = client.post("/v1/alerts/2/label", json={"label": "maybe"}, headers=AUTH)
    assert bad.status_code == 422 and bad.json()["field"] == "label"
    assert api_store.get_decision("2")["status"] == "open"
    assert not publisher.labels


def test_card_view(make_client, api_store, handbook):
    client, state, _ = make_client()
    _seed(api_store, 12)
    state.values.update(
        _history(
            handbook,
            [
                {**TX, "CUSTOMER_ID": 1, "TRANSACTION_ID": 1, "TX_DATETIME": "2018-04-10 09:00:00"},
                {**TX, "CUSTOMER_ID": 1, "TRANSACTION_ID": 2, "TX_DATETIME": "2018-04-10 09:30:00"},
            ],
        )
    )
    body = client.get("/v1/cards/1", headers=AUTH).json()
    assert body["found"] and body["events"] == 2 and body["as_of"] == "2018-04-10 09:30:00"
    assert [d["transaction_id"] for d in body["recent_decisions"]] == ["9", "5", "1"]
    # the card's features of its latest decision: the card entity's, not the terminal's
    assert body["features"]["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] == 2.0
    assert not any(name.startswith("TERMINAL_ID") for name in body["features"])
    assert ("card", "1") in state.asked
    empty = client.get("/v1/cards/nobody", headers=AUTH).json()
    assert not empty["found"] and empty["features"] is None and empty["events"] == 0


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
        "/v1/alerts/labels",
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
    decision = spec["components"]["schemas"]["TransactionDecisionOut"]["properties"]
    assert {"card", "merchant", "amount", "fields", "entities", "ignored_fields"} <= set(decision)


def test_a_label_of_a_decision_without_entity_keys_reads_them_from_the_record(
    make_client, api_store
):
    client, _, publisher = make_client()
    api_store.upsert_decisions([stored_decision(5, "block", card="c-5", entities={})])
    response = client.post("/v1/alerts/5/label", json={"label": "fraud"}, headers=AUTH)
    assert response.status_code == 200, response.text
    [label] = publisher.labels
    assert label.entities == {"card": "c-5", "terminal": "7"}
