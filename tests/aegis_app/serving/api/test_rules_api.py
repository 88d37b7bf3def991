"""The rule and list endpoints: a rule's life from draft to retired with who and why, the
422 naming the expression's line and column, the backtest over stored decisions, the alert
budget at activation, lists, and what is announced on aegis.rules; a rule's live hits per
day and every rule's totals, the audit log and every list at a glance."""

from __future__ import annotations

import json
from datetime import datetime

from aegis_app.kafka.rule_updates import decode
from tests.aegis_app.serving.api.conftest import AUTH, auth, stored_decision

RULE = {
    "expression": "TX_AMOUNT > 100 && CUSTOMER_ID_NB_TX_1DAY_WINDOW >= 2",
    "action": "review",
    "priority": 10,
    "reason": "big amount on a busy card",
    "note": "seen in last week's frauds",
}


def _announced(publisher) -> list[tuple[str, dict]]:
    return [(key.decode(), decode(value)) for key, value in publisher.rule_changes]


def test_a_rule_from_draft_to_retired(make_client, api_store):
    client, _, publisher = make_client()
    created = client.post("/v1/rules", json=RULE, headers=auth("analyst"))
    assert created.status_code == 201, created.text
    rule = created.json()
    rule_id = rule["rule_id"]
    assert rule["state"] == "draft" and rule["changed_by"] == "analyst:analyst"
    assert publisher.rule_changes == []  # a draft runs nowhere
    url = f"/v1/rules/{rule_id}"
    shadow = client.post(f"{url}/shadow", json={"note": "watch"}, headers=auth("analyst"))
    assert shadow.json()["state"] == "shadow" and shadow.json()["version"] == 2
    active = client.post(f"{url}/activate", json={"note": "good"}, headers=auth("admin"))
    assert active.status_code == 200 and active.json()["state"] == "active"
    again = client.post(f"{url}/activate", headers=auth("admin"))  # a retry: announced again
    assert again.json()["version"] == 3
    edit = client.put(url, json=RULE, headers=auth("analyst"))
    assert edit.status_code == 409 and "retire it before editing" in edit.json()["detail"]
    retired = client.post(f"{url}/retire", json={}, headers=auth("admin"))
    assert retired.json()["state"] == "retired"
    got = client.get(url, headers=auth("read")).json()
    assert got["state"] == "retired"
    assert [(v["state"], v["changed_by"], v["note"]) for v in got["history"]] == [
        ("draft", "analyst:analyst", "seen in last week's frauds"),
        ("shadow", "analyst:analyst", "watch"),
        ("active", "admin:admin", "good"),
        ("retired", "admin:admin", None),
    ]
    announced = _announced(publisher)
    assert [key for key, _ in announced] == [f"rule:{rule_id}"] * 4
    assert [value["state"] for _, value in announced] == ["shadow", "active", "active", "retired"]
    # the message is the version as stored (its time in ISO form), and the lists it reads
    message = announced[1][1]
    assert message.pop("kind") == "rule" and message.pop("lists") == []
    assert datetime.fromisoformat(message.pop("changed_at")) == datetime.fromisoformat(
        got["history"][2].pop("changed_at")
    )
    assert message == got["history"][2]
    listed = client.get("/v1/rules", params={"state": "retired"}, headers=auth("read")).json()
    assert [r["rule_id"] for r in listed["items"]] == [rule_id]
    audit = api_store.audit_log(target=f"rule:{rule_id}")
    assert [e["action"] for e in audit] == [
        "rule.retired",
        "rule.active",
        "rule.shadow",
        "rule.create",
    ]


def test_the_lifecycle_refuses_skipping_shadow(make_client):
    client, _, _ = make_client()
    rule_id = client.post("/v1/rules", json=RULE, headers=auth("admin")).json()["rule_id"]
    response = client.post(f"/v1/rules/{rule_id}/activate", headers=auth("admin"))
    assert response.status_code == 409
    assert response.json() == {
        "detail": "the rule is draft: only a shadow rule can become active",
        "field": "state",
    }
    assert client.get("/v1/rules/999", headers=auth("read")).status_code == 404
    assert client.post("/v1/rules/999/shadow", headers=auth("admin")).status_code == 404


def test_a_bad_expression_is_a_422_with_line_and_column(make_client):
    client, _, _ = make_client()
    for expression, line, column, reason in (
        ("TX_AMOUNT >", 1, 12, "Syntax error"),
        ("TX_AMOUNT > 1 &&\n  TX_AMOUNTT < 5", 2, 3, "unknown name 'TX_AMOUNTT'"),
        ("card in lists.vip_cards", 1, 15, "unknown list 'vip_cards'"),
    ):
        response = client.post(
            "/v1/rules", json={**RULE, "expression": expression}, headers=auth("analyst")
        )
        assert response.status_code == 422, response.text
        body = response.json()
        assert body["field"] == "expression" and (body["line"], body["column"]) == (line, column)
        assert reason in body["detail"]
        assert body["detail"].startswith(f"expression: line {line}, column {column}: ")
    response = client.post("/v1/rules", json={**RULE, "action": "deny"}, headers=auth("analyst"))
    assert response.status_code == 422 and response.json()["field"] == "action"


def test_a_shadow_rule_edited_is_announced_as_a_draft(make_client):
    client, _, publisher = make_client()
    rule_id = client.post("/v1/rules", json=RULE, headers=auth("analyst")).json()["rule_id"]
    client.post(f"/v1/rules/{rule_id}/shadow", headers=auth("analyst"))
    edited = client.put(
        f"/v1/rules/{rule_id}", json={**RULE, "priority": 20}, headers=auth("analyst")
    )
    assert edited.status_code == 200 and edited.json()["state"] == "draft"
    assert [v["state"] for _, v in _announced(publisher)] == ["shadow", "draft"]


def test_lists_are_versioned_announced_and_usable_in_rules(make_client, api_store):
    client, _, publisher = make_client()
    put = client.put(
        "/v1/lists/vip_cards",
        json={"items": ["7", "3", "7"], "note": "bank"},
        headers=auth("admin"),
    )
    assert put.status_code == 200 and put.json()["items"] == ["3", "7"]
    assert client.get("/v1/lists/vip_cards", headers=auth("read")).json()["version"] == 1
    assert client.get("/v1/lists/other", headers=auth("read")).status_code == 404
    [(key, value)] = _announced(publisher)
    assert key == "list:vip_cards" and value["items"] == ["3", "7"] and value["kind"] == "list"
    rule = {**RULE, "expression": "card in lists.vip_cards", "action": "allow"}
    created = client.post("/v1/rules", json=rule, headers=auth("analyst"))
    assert created.status_code == 201
    rule_id = created.json()["rule_id"]
    client.post(f"/v1/rules/{rule_id}/shadow", headers=auth("analyst"))
    assert _announced(publisher)[-1][1]["lists"] == ["vip_cards"]
    bad = client.put("/v1/lists/Bad-Name", json={"items": []}, headers=auth("admin"))
    assert bad.status_code == 422 and bad.json()["field"] == "name"
    empty_item = client.put("/v1/lists/x", json={"items": [""]}, headers=auth("admin"))
    assert empty_item.status_code == 422 and empty_item.json()["field"].startswith("items")
    [entry] = api_store.audit_log(target="list:vip_cards")
    assert entry["actor"] == "admin:admin" and entry["note"] == "bank"


def _store_week(api_store) -> None:
    """Two days of decisions: amounts 12.5, card counts 2.0; three allowed a day, one
    review; transaction 0 labelled fraud, 1 legitimate."""
    decisions = []
    for i in range(8):
        day = 1 + i // 4
        action = "review" if i % 4 == 3 else "allow"
        decisions.append(stored_decision(i, action, tx_datetime=f"2018-04-0{day} 10:00:0{i}"))
    api_store.upsert_decisions(decisions)
    api_store.record_label("0", 1)
    api_store.record_label("1", 0)


def test_backtest_over_the_stored_decisions(make_client, api_store):
    _store_week(api_store)
    client, _, _ = make_client()
    rule = {**RULE, "expression": "TX_AMOUNT > 10 && CUSTOMER_ID_NB_TX_1DAY_WINDOW >= 2"}
    rule_id = client.post("/v1/rules", json=rule, headers=auth("analyst")).json()["rule_id"]
    response = client.post(f"/v1/rules/{rule_id}/backtest", headers=auth("analyst"))
    assert response.status_code == 200, response.text
    out = response.json()
    # default period: 7 days up to the newest stored day
    assert (out["start"], out["end"]) == ("2018-03-27", "2018-04-03")
    assert out["rows"] == 8 and out["hits"] == 8 and out["errors"] == 0
    assert [(d["day"], d["hits"], d["added_alerts"]) for d in out["days"]] == [
        ("2018-04-01", 4, 3),
        ("2018-04-02", 4, 3),
    ]
    assert out["added_alerts_per_day"] == 3.0 and out["overlap"] == 2
    assert out["precision"] == 0.5 and out["recall"] == 1.0
    one_day = client.post(
        f"/v1/rules/{rule_id}/backtest",
        json={"start": "2018-04-02", "end": "2018-04-03"},
        headers=auth("analyst"),
    ).json()
    assert one_day["rows"] == 4 and one_day["labelled_hits"] == 0 and one_day["precision"] is None
    last_day = client.post(
        f"/v1/rules/{rule_id}/backtest", json={"days": 1}, headers=auth("analyst")
    ).json()  # the newest stored day only
    assert (last_day["start"], last_day["end"], last_day["rows"]) == ("2018-04-02", "2018-04-03", 4)
    backwards = client.post(
        f"/v1/rules/{rule_id}/backtest",
        json={"start": "2018-04-03", "end": "2018-04-02"},
        headers=auth("analyst"),
    )
    assert backwards.status_code == 422 and backwards.json()["field"] == "end"


def test_activation_over_the_alert_budget_needs_confirm(make_client, api_store):
    _store_week(api_store)
    client, _, publisher = make_client(rule_alert_budget=2.0)
    rule = {**RULE, "expression": "TX_AMOUNT > 10"}
    rule_id = client.post("/v1/rules", json=rule, headers=auth("analyst")).json()["rule_id"]
    client.post(f"/v1/rules/{rule_id}/shadow", headers=auth("analyst"))
    refused = client.post(f"/v1/rules/{rule_id}/activate", json={}, headers=auth("admin"))
    assert refused.status_code == 409
    body = refused.json()
    assert body["field"] == "confirm" and body["added_alerts_per_day"] == 3.0
    assert body["budget"] == 2.0 and (body["start"], body["end"]) == ("2018-03-27", "2018-04-03")
    assert "3.0 alerts a day" in body["detail"] and "budget of 2" in body["detail"]
    assert client.get(f"/v1/rules/{rule_id}", headers=auth("read")).json()["state"] == "shadow"
    confirmed = client.post(
        f"/v1/rules/{rule_id}/activate", json={"confirm": True}, headers=auth("admin")
    )
    assert confirmed.status_code == 200 and confirmed.json()["state"] == "active"
    assert json.loads(publisher.rule_changes[-1][1])["state"] == "active"


def test_labels_name_the_token_and_are_audited(make_client, api_store):
    api_store.upsert_decisions([stored_decision(5)])
    client, _, _ = make_client()
    response = client.post("/v1/alerts/5/label", json={"label": "fraud"}, headers=auth("analyst"))
    assert response.status_code == 200
    assert response.json()["alert"]["labelled_by"] == "analyst"
    [entry] = api_store.audit_log(target="transaction:5")
    assert entry["action"] == "label" and entry["actor"] == "analyst:analyst"


def _store_hits(api_store, rule_id: int) -> None:
    """Rule `rule_id` matched as shadow v2 on 2018-04-01 (twice) and as active v3 on
    2018-04-02 (once) and 2018-04-03 (once, on an allowed decision)."""
    shadow = {"id": rule_id, "version": 2, "action": "review", "shadow": True}
    active = {"id": rule_id, "version": 3, "action": "review", "shadow": False}
    api_store.upsert_decisions(
        [
            stored_decision(1, "allow", rules=[shadow], tx_datetime="2018-04-01 10:00:00"),
            stored_decision(2, "review", rules=[shadow], tx_datetime="2018-04-01 11:00:00"),
            stored_decision(3, "review", rules=[active], tx_datetime="2018-04-02 10:00:00"),
            stored_decision(4, "allow", rules=[active], tx_datetime="2018-04-03 10:00:00"),
            stored_decision(5, "review", tx_datetime="2018-04-04 10:00:00"),
        ]
    )


def test_a_rules_hits_per_day(make_client, api_store):
    client, _, _ = make_client()
    rule_id = client.post("/v1/rules", json=RULE, headers=auth("analyst")).json()["rule_id"]
    _store_hits(api_store, rule_id)
    url = f"/v1/rules/{rule_id}/hits"
    body = client.get(url, headers=auth("read")).json()
    assert body == {
        "rule_id": rule_id,
        "days": [
            {"day": "2018-04-01", "version": 2, "shadow": True, "hits": 2},
            {"day": "2018-04-02", "version": 3, "shadow": False, "hits": 1},
            {"day": "2018-04-03", "version": 3, "shadow": False, "hits": 1},
        ],
        "total_active": 2,
        "total_shadow": 2,
    }
    # [start, end): the end day itself is not counted
    window = {"start": "2018-04-02", "end": "2018-04-03"}
    body = client.get(url, params=window, headers=auth("read")).json()
    assert [d["day"] for d in body["days"]] == ["2018-04-02"]
    assert (body["total_active"], body["total_shadow"]) == (1, 0)
    later = client.get(url, params={"start": "2018-04-05"}, headers=auth("read")).json()
    assert later["days"] == [] and later["total_active"] == later["total_shadow"] == 0
    # a rule never matched has no days; an unknown one is a 404
    other = client.post("/v1/rules", json=RULE, headers=auth("analyst")).json()["rule_id"]
    assert client.get(f"/v1/rules/{other}/hits", headers=auth("read")).json()["days"] == []
    missing = client.get("/v1/rules/999/hits", headers=auth("read"))
    assert missing.status_code == 404 and missing.json()["detail"] == "no rule 999"
    for params, field in (
        ({"start": "2018-04-03", "end": "2018-04-03"}, "end"),
        ({"start": "April"}, "start"),
        ({"end": "2018-02-30"}, "end"),
    ):
        bad = client.get(url, params=params, headers=auth("read"))
        assert bad.status_code == 422 and bad.json()["field"] == field, bad.text


def test_rules_are_listed_with_their_hits(make_client, api_store):
    client, _, _ = make_client()
    matched = client.post("/v1/rules", json=RULE, headers=auth("analyst")).json()["rule_id"]
    never = client.post("/v1/rules", json=RULE, headers=auth("analyst")).json()["rule_id"]
    _store_hits(api_store, matched)
    items = {r["rule_id"]: r for r in client.get("/v1/rules", headers=auth("read")).json()["items"]}
    assert {k: items[matched][k] for k in ("hits_active", "hits_shadow", "last_hit_day")} == {
        "hits_active": 2,
        "hits_shadow": 2,
        "last_hit_day": "2018-04-03",
    }
    assert items[matched]["expression"] == RULE["expression"]  # the rule itself, as before
    assert {k: items[never][k] for k in ("hits_active", "hits_shadow", "last_hit_day")} == {
        "hits_active": 0,
        "hits_shadow": 0,
        "last_hit_day": None,
    }
    drafts = client.get("/v1/rules", params={"state": "draft"}, headers=auth("read")).json()
    assert [r["hits_shadow"] for r in drafts["items"]] == [2, 0]


def test_the_audit_log_newest_first(make_client, api_store):
    api_store.upsert_decisions([stored_decision(5)])
    client, _, _ = make_client()
    rule_id = client.post("/v1/rules", json=RULE, headers=auth("analyst")).json()["rule_id"]
    client.post(f"/v1/rules/{rule_id}/shadow", json={"note": "watch"}, headers=auth("analyst"))
    client.put("/v1/lists/vip_cards", json={"items": ["1"]}, headers=auth("admin"))
    client.post("/v1/alerts/5/label", json={"label": "fraud"}, headers=auth("analyst"))
    body = client.get("/v1/audit", headers=auth("read")).json()
    assert [(e["what"], e["target"], e["who"]) for e in body["items"]] == [
        ("label", "transaction:5", "analyst:analyst"),
        ("list.put", "list:vip_cards", "admin:admin"),
        ("rule.shadow", f"rule:{rule_id}", "analyst:analyst"),
        ("rule.create", f"rule:{rule_id}", "analyst:analyst"),
    ]
    shadowed = body["items"][2]
    assert shadowed["note"] == "watch" and shadowed["details"]["state"] == "shadow"
    assert set(shadowed) == {"id", "who", "what", "when", "target", "note", "details"}
    ids = [e["id"] for e in body["items"]]
    assert ids == sorted(ids, reverse=True)
    of_rule = client.get(
        "/v1/audit", params={"target": f"rule:{rule_id}", "limit": 1}, headers=auth("read")
    ).json()
    assert [e["what"] for e in of_rule["items"]] == ["rule.shadow"]
    assert client.get("/v1/audit", params={"target": "rule:999"}, headers=AUTH).json() == {
        "items": []
    }
    for params, field in (
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"target": ""}, "target"),
    ):
        bad = client.get("/v1/audit", params=params, headers=auth("read"))
        assert bad.status_code == 422 and bad.json()["field"] == field


def test_every_list_with_its_version_and_size(make_client):
    client, _, _ = make_client()
    assert client.get("/v1/lists", headers=auth("read")).json() == {"items": []}
    client.put("/v1/lists/vip_cards", json={"items": ["1", "2"]}, headers=auth("admin"))
    client.put(
        "/v1/lists/vip_cards",
        json={"items": ["1", "2", "3"], "note": "more"},
        headers=auth("admin"),
    )
    client.put("/v1/lists/bad_merchants", json={"items": []}, headers=auth("admin"))
    items = client.get("/v1/lists", headers=auth("read")).json()["items"]
    assert [(x["name"], x["version"], x["size"], x["changed_by"], x["note"]) for x in items] == [
        ("bad_merchants", 1, 0, "admin:admin", None),
        ("vip_cards", 2, 3, "admin:admin", "more"),
    ]
    assert "items" not in items[0] and items[1]["changed_at"]


def test_rule_names_are_the_configs_fields_features_and_lists(make_client):
    client, _, _ = make_client()
    client.put("/v1/lists/vip_cards", json={"items": ["1"]}, headers=auth("admin"))
    body = client.get("/v1/rules/names", headers=auth("read")).json()
    kinds = {item["name"]: item["kind"] for item in body["items"]}
    assert kinds["TX_AMOUNT"] == "number" and kinds["card"] == "string"
    assert "CUSTOMER_ID_NB_TX_1DAY_WINDOW" in kinds  # a feature of configs/handbook.toml
    assert body["lists"] == ["vip_cards"]
    # the route is not taken for a rule id
    assert client.get("/v1/rules/names", headers=auth("read")).status_code == 200
