"""Decisions: rules before the model, thresholds after, and reasons a person can read."""

from __future__ import annotations

import json

from models.decisions.policy import ALLOW, BLOCK, REVIEW, Rules, decide

THRESHOLDS = {"review": 0.5, "block": 0.9}
TX = {"transaction_id": 1, "customer_id": 7, "terminal_id": 70, "tx_amount": 120.0}
FEATURES = {"CUSTOMER_ID_NB_TX_1DAY_WINDOW": 3.0}
WHY = ["TX_AMOUNT=120 (typical 50, +2.1 sd)"]


def test_thresholds_give_allow_review_block_with_model_reasons():
    assert decide(0.1, THRESHOLDS, TX, FEATURES, Rules(), WHY) == (ALLOW, [])
    action, reasons = decide(0.6, THRESHOLDS, TX, FEATURES, Rules(), WHY)
    assert action == REVIEW
    assert reasons[0] == "MODEL score 0.6000 >= review threshold 0.5000"
    assert reasons[1] == "FEATURE TX_AMOUNT=120 (typical 50, +2.1 sd)"
    action, reasons = decide(0.95, THRESHOLDS, TX, FEATURES, Rules(), WHY)
    assert action == BLOCK and reasons[0].startswith("MODEL score 0.9500 >= block threshold")


def test_lists_come_before_the_model():
    deny = Rules(deny_cards=frozenset({7}))
    assert decide(0.0, THRESHOLDS, TX, FEATURES, deny, [])[0] == BLOCK
    allow = Rules(allow_cards=frozenset({7}))
    action, reasons = decide(0.99, THRESHOLDS, TX, FEATURES, allow, WHY)
    assert action == ALLOW and reasons == ["RULE allow_list: card is on the allow list"]
    terminal = Rules(deny_terminals=frozenset({70}))
    assert decide(0.0, THRESHOLDS, TX, FEATURES, terminal, [])[1][0].startswith("RULE deny_list")


def test_caps_raise_a_review_and_name_the_limit():
    rules = Rules(amount_cap=100.0, velocity_cap_1d=2)
    action, reasons = decide(0.1, THRESHOLDS, TX, FEATURES, rules, WHY)
    assert action == REVIEW
    assert "RULE amount_cap: amount 120.00 > 100.00" in reasons
    assert "RULE velocity_cap: 3 transactions in 1 day > 2" in reasons
    # a blocking score still blocks, with both kinds of reasons
    action, reasons = decide(0.95, THRESHOLDS, TX, FEATURES, rules, WHY)
    assert action == BLOCK and any(r.startswith("MODEL") for r in reasons)


def test_rules_file(tmp_path):
    path = tmp_path / "rules.json"
    path.write_text(json.dumps({"deny_cards": [1, "2"], "amount_cap": 5000}))
    rules = Rules.from_file(path)
    assert rules.deny_cards == frozenset({1, 2}) and rules.amount_cap == 5000
    assert Rules.from_file(tmp_path / "missing.json") == Rules()
