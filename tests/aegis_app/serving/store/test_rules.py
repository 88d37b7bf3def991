"""Rules, lists and the audit log in the store (SQLite and PostgreSQL): every change a new
version with who, when and why; state moves as the lifecycle allows; the backtest's rows
in batches; revision 0005 up and down."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import Engine, inspect

from aegis_app.serving.store import Store, upgrade
from aegis_app.serving.store.repository import alembic_config
from models.rules.lifecycle import LifecycleError
from tests.aegis_app.serving.store.test_repository import decision

SPEC = {"expression": "amount > 500", "action": "review", "priority": 10, "reason": "big"}


def test_every_change_is_a_new_version_with_who_and_why(store: Store):
    first = store.create_rule(SPEC, "analyst:ana", "first try")
    rule_id = first["rule_id"]
    assert first["version"] == 1 and first["state"] == "draft"
    edited = store.edit_rule(
        rule_id, {**SPEC, "expression": "amount > 900"}, "analyst:bo", "tighter"
    )
    assert edited["version"] == 2 and edited["changed_by"] == "analyst:bo"
    moved, changed = store.move_rule(rule_id, "shadow", "analyst:bo", "watch it")
    assert changed and moved["version"] == 3 and moved["expression"] == "amount > 900"
    again, changed = store.move_rule(rule_id, "shadow", "analyst:bo")
    assert not changed and again["version"] == 3  # already there: nothing new
    store.move_rule(rule_id, "active", "admin:cy", "precise enough")
    history = store.rule_history(rule_id)
    assert [(v["version"], v["state"], v["changed_by"], v["note"]) for v in history] == [
        (1, "draft", "analyst:ana", "first try"),
        (2, "draft", "analyst:bo", "tighter"),
        (3, "shadow", "analyst:bo", "watch it"),
        (4, "active", "admin:cy", "precise enough"),
    ]
    assert store.get_rule(rule_id)["state"] == "active"
    assert [e["action"] for e in store.audit_log(target=f"rule:{rule_id}")] == [
        "rule.active",
        "rule.shadow",
        "rule.edit",
        "rule.create",
    ]


def test_the_lifecycle_is_enforced(store: Store):
    rule_id = store.create_rule(SPEC, "analyst:ana")["rule_id"]
    with pytest.raises(LifecycleError, match="only a shadow rule can become active"):
        store.move_rule(rule_id, "active", "admin:cy")
    store.move_rule(rule_id, "shadow", "analyst:ana")
    store.move_rule(rule_id, "active", "admin:cy")
    with pytest.raises(LifecycleError, match="retire it before editing"):
        store.edit_rule(rule_id, SPEC, "analyst:ana")
    store.move_rule(rule_id, "retired", "admin:cy")
    assert store.edit_rule(rule_id, SPEC, "analyst:ana")["state"] == "draft"
    assert store.get_rule(rule_id + 100) is None
    assert store.move_rule(rule_id + 100, "shadow", "x") is None
    assert store.edit_rule(rule_id + 100, SPEC, "x") is None


def test_list_rules_shows_each_rules_newest_version(store: Store):
    a = store.create_rule(SPEC, "analyst:ana")["rule_id"]
    b = store.create_rule({**SPEC, "action": "tag"}, "analyst:ana")["rule_id"]
    store.move_rule(b, "shadow", "analyst:ana")
    assert [(r["rule_id"], r["state"]) for r in store.list_rules()] == [(a, "draft"), (b, "shadow")]
    assert [r["rule_id"] for r in store.list_rules("shadow")] == [b]


def test_lists_keep_versions_and_audit_what_changed(store: Store):
    assert store.get_list("vip_cards") is None and store.list_items() == {}
    store.put_list("vip_cards", ["2", "1", "2"], "admin:cy", "from the bank")
    second = store.put_list("vip_cards", ["1", "3"], "admin:cy")
    assert second["version"] == 2 and second["items"] == ["1", "3"]
    assert store.get_list("vip_cards")["items"] == ["1", "3"]
    assert store.list_items() == {"vip_cards": frozenset({"1", "3"})}
    store.put_list("blocked_merchants", ["m1"], "admin:dee", "fraud ring")
    assert [
        (x["name"], x["version"], x["size"], x["changed_by"]) for x in store.list_summaries()
    ] == [
        ("blocked_merchants", 1, 1, "admin:dee"),
        ("vip_cards", 2, 2, "admin:cy"),
    ]
    assert "items" not in store.list_summaries()[0]
    assert store.list_summaries()[0]["note"] == "fraud ring"
    [entry, first_entry] = store.audit_log(target="list:vip_cards")
    assert entry["details"] == {"version": 2, "size": 2, "added": 1, "removed": 1}
    assert first_entry["note"] == "from the bank" and first_entry["actor"] == "admin:cy"


def test_backtest_rows_come_in_event_time_order_across_batches(store: Store):
    store.upsert_decisions(
        [decision(i, "allow", tx_datetime=f"2018-04-0{1 + i % 3} 00:00:0{i}") for i in range(7)]
    )
    rows = list(store.backtest_rows("2018-04-01 00:00:00", "2018-04-03 00:00:00", batch=2))
    assert [(r["tx_datetime"], r["transaction_id"]) for r in rows] == sorted(
        (r["tx_datetime"], r["transaction_id"]) for r in rows
    )
    assert {r["transaction_id"] for r in rows} == {"0", "1", "3", "4", "6"}
    assert set(rows[0]) >= {"fields", "features", "action", "amount", "card"}


def test_revision_0005_up_and_down(engine: Engine):
    upgrade(engine, "0004")
    assert "rules" not in inspect(engine).get_table_names()
    upgrade(engine)
    assert {"rules", "rule_versions", "rule_lists", "audit_log"} <= set(
        inspect(engine).get_table_names()
    )
    store = Store(engine=engine, migrate=False)
    store.create_rule(SPEC, "analyst:ana")
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection), "0004")
    tables = set(inspect(engine).get_table_names())
    assert not {"rules", "rule_versions", "rule_lists", "audit_log"} & tables
    assert "decisions" in tables
    upgrade(engine)
    assert store.list_rules() == []
