"""Backtest: hits per day, the alerts a rule adds, overlap with the stored alerts, and
precision and recall against the known labels."""

from __future__ import annotations

from models.rules.backtest import backtest
from models.rules.expression import compile_expression
from models.rules.rule import Rule
from tests.models.rules.test_expression import LISTS, SPARKOV


def row(tx_id, day, amount, action="allow", features=None):
    return {
        "transaction_id": tx_id,
        "card": "c1",
        "merchant": "m1",
        "amount": amount,
        "ts": 0,
        "tx_datetime": f"2019-01-0{day} 10:00:00",
        "fields": {"category": "misc_net"},
        "features": features if features is not None else {"card_count_1d": 1.0},
        "action": action,
    }


ROWS = [
    row("a", 1, 500.0),  # hit, allowed: added; fraud
    row("b", 1, 600.0, "review"),  # hit, already an alert; legitimate
    row("c", 1, 10.0, "block"),  # model alert only; fraud (missed by the rule)
    row("d", 2, 700.0),  # hit, added; unlabelled
    row("e", 2, 20.0),  # no hit
    row("f", 2, 800.0, features={}),  # no card_count_1d: the rule cannot answer
]
LABELS = {"a": 1, "b": 0, "c": 1}


def run(action="review"):
    expression = compile_expression("amount > 100 && card_count_1d >= 1", SPARKOV)
    return backtest(Rule(7, expression, action), ROWS, LABELS, SPARKOV, LISTS)


def test_counts_per_day_and_against_the_model_and_labels():
    out = run()
    assert out["rows"] == 6 and out["hits"] == 3 and out["errors"] == 1
    assert out["error_examples"][0]["transaction_id"] == "f"
    assert out["days"] == [
        {"day": "2019-01-01", "rows": 3, "hits": 2, "added_alerts": 1, "model_alerts": 2},
        {"day": "2019-01-02", "rows": 3, "hits": 1, "added_alerts": 1, "model_alerts": 0},
    ]
    assert out["added_alerts"] == 2 and out["added_alerts_per_day"] == 1.0
    assert out["max_added_alerts_in_a_day"] == 1
    assert out["model_alerts"] == 2 and out["overlap"] == 1
    assert out["overlap_share_of_hits"] == 1 / 3 and out["overlap_share_of_model_alerts"] == 0.5
    assert out["labelled_hits"] == 2 and out["fraud_hits"] == 1 and out["labelled_frauds"] == 2
    assert out["precision"] == 0.5 and out["recall"] == 0.5


def test_tag_and_allow_rules_add_no_alerts():
    for action in ("tag", "allow"):
        out = run(action)
        assert out["hits"] == 3 and out["added_alerts"] == 0


def test_no_rows_no_labels():
    expression = compile_expression("amount > 1", SPARKOV)
    out = backtest(Rule(1, expression, "block"), [], {}, SPARKOV, {})
    assert out["rows"] == 0 and out["days"] == [] and out["added_alerts_per_day"] == 0.0
    assert out["precision"] is None and out["recall"] is None
