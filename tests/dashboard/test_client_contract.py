"""dashboard.client against the real API application (in-process, no network): the page's
calls and the API's answers agree. Fails when either side changes the contract."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from dashboard import shaping
from dashboard.client import AegisClient, ApiNotFound, ApiRejected, ApiUnauthorized, RuleSpec
from tests.dashboard.sample_data import decisions

NAMES = shaping.RecordNames()  # the page's titles do not matter here, the fields do

TOKEN = "contract-token"
BUDGET = 2.0  # alerts a day a rule may add before its activation needs confirm
pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")


@pytest.fixture
def api(tmp_path) -> Iterator[tuple[AegisClient, object, list]]:
    pytest.importorskip("aegis_app.serving.api.app")
    from tests.dashboard.api_stack import build_api, page_client

    app, store, _metrics, published, _model_dir = build_api(
        tmp_path, TOKEN, rule_alert_budget=BUDGET
    )
    with page_client(app, TOKEN) as client:
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


def _allowed(store, n: int = 21) -> list[str]:
    """`n` allowed decisions on the sample's event days (what a new rule would add)."""
    rows = decisions(n, seed=11)
    for i, row in enumerate(rows):
        row.update(transaction_id=f"allowed-{i}", action="allow", status=None)
    store.upsert_decisions(rows)
    return [row["transaction_id"] for row in rows]


def test_a_rule_from_draft_to_retired_through_the_client(api):
    client, store, published = api
    _allowed(store)
    with pytest.raises(ApiRejected) as refused:
        client.create_rule(RuleSpec("TX_AMOUNT >", "review", "big"))
    assert refused.value.status == 422 and refused.value.field == "expression"
    assert (refused.value.body["line"], refused.value.body["column"]) == (1, 12)
    rule = client.create_rule(RuleSpec("TX_AMOUNT > 0", "review", "any amount", 5, "try"))
    rule_id = rule["rule_id"]
    assert rule["state"] == "draft"
    [listed] = client.list_rules()
    assert (listed["rule_id"], listed["hits_active"], listed["last_hit_day"]) == (rule_id, 0, None)
    backtest = client.backtest_rule(rule_id)
    assert backtest["hits"] == backtest["rows"] == 81 and backtest["added_alerts"] == 21
    assert client.shadow_rule(rule_id, note="watch")["state"] == "shadow"
    with pytest.raises(ApiRejected) as over:
        client.activate_rule(rule_id)
    body = over.value.body
    assert over.value.status == 409 and over.value.field == "confirm"
    assert body["budget"] == BUDGET and body["added_alerts_per_day"] > BUDGET
    assert {"start", "end", "detail"} <= set(body)
    assert client.activate_rule(rule_id, confirm=True, note="go")["state"] == "active"
    with pytest.raises(ApiRejected) as active:
        client.edit_rule(rule_id, RuleSpec("TX_AMOUNT > 1", "review", "any amount"))
    assert active.value.status == 409 and active.value.field == "state"
    assert client.retire_rule(rule_id)["state"] == "retired"
    got = client.get_rule(rule_id)
    assert [v["state"] for v in got["history"]] == ["draft", "shadow", "active", "retired"]
    edited = client.edit_rule(
        rule_id, RuleSpec("TX_AMOUNT > 1", "block", "any amount", note="again")
    )
    assert edited["state"] == "draft" and edited["action"] == "block"
    assert [e["what"] for e in client.audit(target=f"rule:{rule_id}", limit=3)] == [
        "rule.edit",
        "rule.retired",
        "rule.active",
    ]
    assert [kind for kind, _ in published] == ["rule"] * 3  # shadow, active, retired
    with pytest.raises(ApiNotFound, match="No rule 999 found"):
        client.rule_hits(999)


def test_rule_hits_queue_filters_lists_and_many_labels(api):
    client, store, published = api
    rule_id = store.create_rule(
        {"expression": "TX_AMOUNT > 0", "action": "review", "priority": 0, "reason": "x"},
        "admin:admin",
    )["rule_id"]
    open_rows = client.alerts(status="open", limit=3)["items"]
    hit = {"id": rule_id, "version": 2, "action": "review", "shadow": True}
    store.upsert_decisions([{**open_rows[0], "rules": [hit]}])
    day = open_rows[0]["tx_datetime"][:10]
    hits = client.rule_hits(rule_id, start=day)
    assert hits["days"] == [{"day": day, "version": 2, "shadow": True, "hits": 1}]
    assert (hits["total_active"], hits["total_shadow"]) == (0, 1)
    assert client.list_rules()[0]["hits_shadow"] == 1
    first = open_rows[0]["transaction_id"]
    assert [r["transaction_id"] for r in client.alerts(rule=rule_id, shadow=True)["items"]] == [
        first
    ]
    assert client.alerts(rule=rule_id, shadow=False)["items"] == []
    merchant = open_rows[1]["merchant"]
    assert all(r["merchant"] == merchant for r in client.alerts(merchant=merchant)["items"])
    found = client.alerts(q=open_rows[2]["card"], limit=500)["items"]
    assert found and all(open_rows[2]["card"] in (r["card"], r["merchant"]) for r in found)
    with pytest.raises(ApiRejected) as shadow_alone:
        client.alerts(shadow=True)
    assert shadow_alone.value.field == "shadow"

    store.put_list("vip_cards", ["1", "2"], "admin:admin", "bank")
    assert [(x["name"], x["version"], x["size"]) for x in client.lists()] == [("vip_cards", 1, 2)]

    ids = [r["transaction_id"] for r in open_rows]
    answer = client.label_many([*ids, "no-such-tx", ids[0]], "fraud", note="ring", analyst="ana")
    assert answer == {"labelled": ids, "not_found": ["no-such-tx"], "published": 3}
    assert [label.transaction_id for kind, label in published if kind == "label"] == ids
    assert all(client.alert(tx)["label"] == "fraud" for tx in ids)
    assert [e["target"] for e in client.audit(limit=3)] == [f"transaction:{tx}" for tx in ids[::-1]]
    with pytest.raises(ApiRejected) as empty:
        client.label_many([], "fraud")
    assert empty.value.status == 422 and empty.value.field == "transaction_ids"
