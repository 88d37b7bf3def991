"""Decisions: rules before the model, thresholds after, and reasons a person can read."""

from __future__ import annotations

import json

from models.decisions.policy import ALLOW, BLOCK, REVIEW, Rules, decide

THRESHOLDS = {"review": 0.5, "block": 0.9}
# A normalised record: ids are text (a hashed PAN, a 19-digit number, a code).
TX = {"transaction_id": "t1", "card": "0007", "merchant": "m-70", "amount": 120.0}
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
    deny = Rules(deny_cards=frozenset({"0007"}))
    assert decide(0.0, THRESHOLDS, TX, FEATURES, deny, []) == (
        BLOCK,
        ["RULE deny_list: card is on the deny list"],
    )
    allow = Rules(allow_cards=frozenset({"0007"}))
    action, reasons = decide(0.99, THRESHOLDS, TX, FEATURES, allow, WHY)
    assert action == ALLOW and reasons == ["RULE allow_list: card is on the allow list"]
    merchant = Rules(deny_merchants=frozenset({"m-70"}))
    assert decide(0.0, THRESHOLDS, TX, FEATURES, merchant, []) == (
        BLOCK,
        ["RULE deny_list: merchant is on the deny list"],
    )
    # Ids are compared as text: "7" is not the card "0007".
    assert decide(0.0, THRESHOLDS, TX, FEATURES, Rules(deny_cards=frozenset({"7"})), [])[0] == (
        ALLOW
    )


def test_caps_raise_a_review_and_name_the_limit():
    rules = Rules(amount_cap=100.0, velocity_cap_1d=2)
    action, reasons = decide(0.1, THRESHOLDS, TX, FEATURES, rules, WHY)
    assert action == REVIEW
    assert "RULE amount_cap: amount 120.00 > 100.00" in reasons
    assert "RULE velocity_cap: 3 transactions in 1 day > 2" in reasons
    # a blocking score still blocks, with both kinds of reasons
    action, reasons = decide(0.95, THRESHOLDS, TX, FEATURES, rules, WHY)
    assert action == BLOCK and any(r.startswith("MODEL") for r in reasons)


def test_the_velocity_cap_reads_the_configured_feature():
    rules = Rules(velocity_cap_1d=2, velocity_feature="card_count_1d")
    features = {"card_count_1d": 5.0}
    action, reasons = decide(0.1, THRESHOLDS, TX, features, rules, [])
    assert action == REVIEW and reasons == ["RULE velocity_cap: 5 transactions in 1 day > 2"]
    # Without the feature (another config): no velocity rule fires.
    assert decide(0.1, THRESHOLDS, TX, {}, rules, []) == (ALLOW, [])


def test_rules_file(tmp_path):
    path = tmp_path / "rules.json"
    path.write_text(
        json.dumps(
            {
                "deny_cards": [1, "2"],
                "allow_cards": ["4111"],
                "deny_merchants": ["m-70"],
                "amount_cap": 5000,
                "velocity_feature": "card_count_1d",
            }
        )
    )
    rules = Rules.from_file(path)
    assert rules.deny_cards == frozenset({"1", "2"}) and rules.amount_cap == 5000
    assert rules.allow_cards == frozenset({"4111"})
    assert rules.deny_merchants == frozenset({"m-70"})
    assert rules.velocity_feature == "card_count_1d"
    assert Rules.from_file(tmp_path / "missing.json") == Rules()


def test_deny_terminals_in_an_older_rules_file_is_read_as_deny_merchants(tmp_path):
    path = tmp_path / "rules.json"
    path.write_text(json.dumps({"deny_terminals": [70]}))
    rules = Rules.from_file(path)
    assert rules.deny_merchants == frozenset({"70"})
    tx = {**TX, "merchant": "70"}
    assert decide(0.0, THRESHOLDS, tx, FEATURES, rules, [])[0] == BLOCK
