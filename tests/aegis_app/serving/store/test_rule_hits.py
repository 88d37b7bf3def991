"""The rules decisions name, in the store (revision 0006), on SQLite and PostgreSQL:
kept on the decision, one hit row per numbered rule (the rules file's checks are named
only), replaced on redelivery; decisions by rule and hits per rule and event day."""

from __future__ import annotations

from sqlalchemy import event, text

from aegis_app.serving.store import Store, upgrade
from tests.aegis_app.serving.store.test_repository import decision

BLOCKER = {"id": 2, "version": 4, "action": "block", "shadow": False}
SHADOWED = {"id": 3, "version": 1, "action": "review", "shadow": True}
FILE_RULE = {"id": "amount_cap", "version": None, "action": "review", "shadow": False}


def test_decisions_keep_their_rules_and_are_found_by_rule(store: Store):
    store.upsert_decisions(
        [
            decision(1, rules=[BLOCKER, SHADOWED], tx_datetime="2018-04-01 10:00:00"),
            decision(2, rules=[BLOCKER], tx_datetime="2018-04-01 11:00:00"),
            decision(3, rules=[SHADOWED, FILE_RULE], tx_datetime="2018-04-02 09:00:00"),
            decision(4, tx_datetime="2018-04-02 09:00:00"),  # no rule (an old producer)
        ]
    )
    assert store.get_decision("1")["rules"] == [BLOCKER, SHADOWED]
    assert store.get_decision("4")["rules"] == []

    def ids(**filters) -> list[str]:
        return [d["transaction_id"] for d in store.list_decisions(**filters).items]

    assert ids(rule_id=2) == ["2", "1"]
    assert ids(rule_id=3) == ["3", "1"]
    assert ids(rule_id=3, shadow=False) == [] and ids(rule_id=2, shadow=False) == ["2", "1"]
    assert ids(rule_id=99) == []
    assert store.rule_hits_per_day(3) == [
        {"day": "2018-04-01", "version": 1, "shadow": True, "hits": 1},
        {"day": "2018-04-02", "version": 1, "shadow": True, "hits": 1},
    ]
    assert store.rule_hits_per_day(2, start="2018-04-02") == []
    assert store.rule_hits_per_day(2) == [
        {"day": "2018-04-01", "version": 4, "shadow": False, "hits": 2}
    ]
    assert store.rule_hit_totals() == {
        2: {"hits_active": 2, "hits_shadow": 0, "last_hit_day": "2018-04-01"},
        3: {"hits_active": 0, "hits_shadow": 2, "last_hit_day": "2018-04-02"},
    }
    # A redelivered decision with other rules replaces its hits (never adds to them).
    store.upsert_decisions([decision(1, rules=[SHADOWED], tx_datetime="2018-04-01 10:00:00")])
    assert ids(rule_id=2) == ["2"]
    assert store.rule_hits_per_day(2)[0]["hits"] == 1
    assert store.rule_hit_totals()[2]["hits_active"] == 1


def test_rule_hit_totals_count_each_mode_and_version(store: Store):
    """A rule shadowed, then activated as a later version: both modes counted, its last
    hit day the newest event day; one grouped query for every rule."""
    shadow_v1 = {"id": 5, "version": 1, "action": "review", "shadow": True}
    active_v2 = {"id": 5, "version": 2, "action": "review", "shadow": False}
    store.upsert_decisions(
        [
            decision(1, rules=[shadow_v1], tx_datetime="2018-04-01 10:00:00"),
            decision(2, rules=[shadow_v1], tx_datetime="2018-04-02 10:00:00"),
            decision(3, rules=[active_v2], tx_datetime="2018-04-05 10:00:00"),
            decision(4, rules=[active_v2, SHADOWED], tx_datetime="2018-04-03 10:00:00"),
        ]
    )
    assert store.rule_hit_totals() == {
        3: {"hits_active": 0, "hits_shadow": 1, "last_hit_day": "2018-04-03"},
        5: {"hits_active": 2, "hits_shadow": 2, "last_hit_day": "2018-04-05"},
    }
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_rest) -> None:
        statements.append(statement)

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        store.rule_hit_totals()
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
    assert len(statements) == 1 and "GROUP BY" in statements[0]


def test_rows_stored_before_0006_read_as_without_rules(engine):
    upgrade(engine, "0005")
    old = Store(engine=engine, migrate=False)
    row = decision(7)
    values = {k: row[k] for k in ("transaction_id", "card", "merchant", "amount", "ts")}
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO decisions (transaction_id, card, merchant, amount, ts, tx_datetime,"
                " fields, entities, action, score, scores, reasons, model_version, features,"
                " decided_at, stored_at) VALUES (:transaction_id, :card, :merchant, :amount,"
                " :ts, '2018-04-01 00:00:31', '{}', '{}', 'allow', 0.1, '{}', '[]', 'v1', '{}',"
                " '2026-01-01 12:00:00', '2026-01-01 12:00:00')"
            ),
            values,
        )
    old.close()
    upgraded = Store(engine=engine)
    try:
        assert upgraded.get_decision("7")["rules"] == []
        assert upgraded.list_decisions(rule_id=2).items == []
    finally:
        upgraded.close()
