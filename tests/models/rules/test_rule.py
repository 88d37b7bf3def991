"""Rule sets: the highest-priority matching rule decides, block and allow are final,
review rules and the model's thresholds give the stronger action, tags only add reasons,
shadow rules never change a decision, and a failing rule is skipped and reported."""

from __future__ import annotations

from models.rules.expression import compile_expression
from models.rules.rule import ACTIVE, SHADOW, Evaluation, Rule, RuleSet, decide
from tests.models.rules.test_expression import FEATURES, LISTS, RECORD, SPARKOV

THRESHOLDS = {"review": 0.5, "block": 0.9}
VARIABLES = SPARKOV.variables(RECORD, FEATURES)


def rule(rule_id, text, action, priority=0, state=ACTIVE):
    return Rule(
        rule_id, compile_expression(text, SPARKOV), action, priority, f"why {rule_id}", state
    )


def evaluate(*rules) -> Evaluation:
    return RuleSet(rules, LISTS).evaluate(VARIABLES)


def test_the_highest_priority_match_wins_and_block_or_allow_is_final():
    found = evaluate(
        rule(1, "amount > 100", "block", priority=5),
        rule(2, "card in lists.vip_cards", "allow", priority=9),
        rule(3, "amount > 1000", "block", priority=99),  # does not match
    )
    assert [r.rule_id for r in found.matched] == [2, 1]
    # the allow rule outranks the block rule and the model's block score
    assert decide(0.99, THRESHOLDS, found) == ("allow", ["RULE 2 v1: why 2"])
    found = evaluate(rule(1, "amount > 100", "block", priority=5))
    assert decide(0.0, THRESHOLDS, found, ["x"]) == ("block", ["RULE 1 v1: why 1"])


def test_review_rules_and_the_model_give_the_stronger_action():
    found = evaluate(
        rule(1, "amount > 100", "review", priority=3),
        rule(2, "card_count_1d >= 4", "review", priority=1),
        rule(3, "amount > 100", "block", priority=0),  # lower than the review rules: loses
    )
    action, reasons = decide(0.1, THRESHOLDS, found, ["amount high"])
    assert action == "review"
    assert reasons == ["RULE 1 v1: why 1", "RULE 2 v1: why 2", "FEATURE amount high"]
    action, reasons = decide(0.95, THRESHOLDS, found)
    assert action == "block" and reasons[-1].startswith("MODEL score 0.9500 >= block")


def test_tags_only_add_a_reason():
    found = evaluate(rule(1, "amount > 100", "tag", priority=50))
    assert decide(0.1, THRESHOLDS, found) == ("allow", ["RULE 1 v1: why 1"])
    action, reasons = decide(0.6, THRESHOLDS, found)
    assert action == "review" and reasons[-1] == "RULE 1 v1: why 1"
    found = evaluate(rule(1, "amount > 100", "tag"), rule(2, "amount > 100", "block"))
    assert decide(0.1, THRESHOLDS, found) == ("block", ["RULE 2 v1: why 2", "RULE 1 v1: why 1"])


def test_shadow_rules_are_reported_but_never_decide():
    found = evaluate(rule(1, "amount > 100", "block", state=SHADOW))
    assert found.matched == [] and [r.rule_id for r in found.shadow] == [1]
    assert decide(0.1, THRESHOLDS, found) == ("allow", [])


def test_draft_and_retired_rules_do_not_run():
    rules = RuleSet(
        (
            rule(1, "amount > 1", "block", state="draft"),
            rule(2, "amount > 1", "block", state="retired"),
        )
    )
    assert rules.rules == ()


def test_a_failing_rule_is_skipped_and_reported():
    found = evaluate(
        rule(1, "card_amount_std_30d > 2", "block", priority=9),  # null: no history
        rule(2, "amount > 100", "review"),
    )
    assert [r.rule_id for r in found.matched] == [2]
    assert [r.rule_id for r, _ in found.errors] == [1]
    assert decide(0.1, THRESHOLDS, found)[0] == "review"
