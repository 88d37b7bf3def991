"""Decisions name the rules: every matching rule (shadow ones flagged) in `rules`, the
versions that fired in the reasons, a rule that cannot be answered for a transaction in
`rule_errors` and skipped there (the model still decides it)."""

from __future__ import annotations

import pytest

from models.decisions.decision import build_decisions, rule_outcomes
from models.rules.expression import compile_expression
from models.rules.rule import ACTIVE, SHADOW, Rule, RuleSet
from models.rules.vocabulary import Vocabulary
from tests.models.conftest import HANDBOOK, HANDBOOK_FEATURES, synthetic

VOCABULARY = Vocabulary.from_config(HANDBOOK)
RATIO = "CUSTOMER_ID_AMOUNT_RATIO_30DAY"


@pytest.fixture(scope="module")
def bundle():
    from models.detectors.logistic import LogisticRegressionDetector
    from models.lifecycle.training import fit_bundle

    X, y, times, cards = synthetic(n=1500)
    return fit_bundle(
        X,
        y,
        "vrules",
        detectors=[LogisticRegressionDetector()],
        feature_names=HANDBOOK_FEATURES,
        times=times,
        cards=cards,
    )


def rule(rule_id, version, text, action, state=ACTIVE) -> Rule:
    expression = compile_expression(text, VOCABULARY)
    return Rule(rule_id, expression, action, 10, f"why {rule_id}", state, version)


def item(tx_id: str, amount: float, ratio: float | None) -> tuple[dict, dict, int]:
    tx = {"transaction_id": tx_id, "card": "1", "merchant": "2", "amount": amount, "ts": 0}
    features = {name: 0.0 for name in HANDBOOK_FEATURES}
    features.update(TX_AMOUNT=amount, **{RATIO: ratio})
    return tx, features, 0


def test_decisions_name_the_rules_and_a_failing_rule_leaves_the_model_to_decide(bundle):
    rules = RuleSet(
        (
            rule(1, 4, "amount > 100.0", "block"),
            rule(2, 1, "amount > 0.0", "block", state=SHADOW),
            rule(3, 2, f"{RATIO} > 1000.0", "block"),  # null ratio: cannot be answered
        )
    )
    big, small, unknown = build_decisions(
        bundle,
        rules,
        VOCABULARY,
        [item("a", 500.0, 0.5), item("b", 5.0, 0.5), item("c", 5.0, None)],
    )
    assert big["action"] == "block" and big["reasons"][0] == "RULE 1 v4: why 1"
    assert big["rules"] == [
        {"id": 1, "version": 4, "action": "block", "shadow": False},
        {"id": 2, "version": 1, "action": "block", "shadow": True},
    ]
    # The shadow rule matched the small ones too: recorded, the model's action kept.
    (plain,) = build_decisions(bundle, RuleSet(), VOCABULARY, [item("b", 5.0, 0.5)])
    assert small["rules"] == [{"id": 2, "version": 1, "action": "block", "shadow": True}]
    assert (small["action"], small["reasons"]) == (plain["action"], plain["reasons"])
    assert small["rule_errors"] == [] and plain["rules"] == []
    # Rule 3 could not be answered for "c": skipped there, named, the model decided.
    assert [(e["id"], e["version"]) for e in unknown["rule_errors"]] == [(3, 2)]
    assert unknown["action"] == plain["action"]
    assert rule_outcomes(unknown) == [
        ("shadow", "2", "1", None),
        ("error", "3", "2", unknown["rule_errors"][0]["error"]),
    ]
