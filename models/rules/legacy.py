"""The JSON rules file of before (AEGIS_RULES_FILE, models.decisions.policy.Rules) as a
rule set with the same outcome: its deny and allow sets become lists, each check a rule.

The priorities keep the old order: denied cards, then denied merchants, then allowed
cards (final, above any rule an analyst may give: API priorities stop at
MAX_PRIORITY), then the amount and velocity caps (review). The reasons name the same
checks (``RULE deny_list: ...``, ``RULE amount_cap: ...``).
"""

from __future__ import annotations

from models.decisions.policy import Rules
from models.rules.expression import compile_expression
from models.rules.rule import ALLOW, BLOCK, REVIEW, Rule, RuleSet
from models.rules.vocabulary import Vocabulary

MAX_PRIORITY = 10_000  # the highest priority a rule given through the API may have
LEGACY_LISTS = ("legacy_deny_cards", "legacy_deny_merchants", "legacy_allow_cards")


def legacy_rule_set(rules: Rules, vocabulary: Vocabulary) -> RuleSet:
    """The rule set equivalent to `rules` under models.rules.rule.decide."""
    lists = {
        "legacy_deny_cards": rules.deny_cards,
        "legacy_deny_merchants": rules.deny_merchants,
        "legacy_allow_cards": rules.allow_cards,
    }
    names = vocabulary.with_lists(lists)
    specs: list[tuple[str, str, str, int, str]] = []  # id, expression, action, priority, why
    top = MAX_PRIORITY * 100
    if rules.deny_cards:
        specs.append(
            (
                "deny_list",
                "card in lists.legacy_deny_cards",
                BLOCK,
                top + 2,
                "card is on the deny list",
            )
        )
    if rules.deny_merchants:
        specs.append(
            (
                "deny_list_merchant",
                "merchant in lists.legacy_deny_merchants",
                BLOCK,
                top + 1,
                "merchant is on the deny list",
            )
        )
    if rules.allow_cards:
        specs.append(
            (
                "allow_list",
                "card in lists.legacy_allow_cards",
                ALLOW,
                top,
                "card is on the allow list",
            )
        )
    if rules.amount_cap is not None:
        cap = float(rules.amount_cap)
        specs.append(("amount_cap", f"amount > {cap!r}", REVIEW, 0, f"amount above {cap:.2f}"))
    # A velocity feature the config does not have never fired (its value read as 0).
    if rules.velocity_cap_1d is not None and rules.velocity_feature in vocabulary.names:
        cap = float(rules.velocity_cap_1d)
        specs.append(
            (
                "velocity_cap",
                f"{rules.velocity_feature} > {cap!r}",
                REVIEW,
                0,
                f"more than {cap:.0f} transactions in 1 day",
            )
        )
    compiled = tuple(
        Rule(rule_id, compile_expression(text, names), action, priority, why, version=None)
        for rule_id, text, action, priority, why in specs
    )
    return RuleSet(compiled, lists)
