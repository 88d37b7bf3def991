"""Published rules to the rule set a scorer runs: running rules only, lists from list
messages, the rules file's rules kept, a rule this config cannot compile skipped (never
raised), and the swap happening only when the scorer applies what was offered."""

from __future__ import annotations

from models.decisions import policy
from models.rules.live import LiveRules, build_rule_set
from models.rules.rule import RuleSet
from tests.models.rules.test_expression import FEATURES, RECORD, SPARKOV


def rule(rule_id, version, state, expression, action="block", priority=0) -> dict:
    return {
        "kind": "rule",
        "rule_id": rule_id,
        "version": version,
        "state": state,
        "expression": expression,
        "action": action,
        "priority": priority,
        "reason": f"why {rule_id}",
        "lists": [],
    }


VIP = {"kind": "list", "name": "vip_cards", "version": 2, "items": [RECORD["card"], 5]}


def test_running_rules_and_lists_are_built_and_bad_ones_skipped():
    built = build_rule_set(
        [
            rule(1, 3, "active", "amount > 100"),
            rule(2, 1, "shadow", "card in lists.vip_cards", "allow", priority=5),
            rule(3, 2, "draft", "amount > 1"),  # not run
            rule(4, 2, "retired", "amount > 1"),  # not run
            rule(5, 1, "active", "no_such_field > 1"),  # this config lacks the name
            {**rule(6, 1, "active", "amount > 1"), "action": "explode"},
            {"kind": "rule", "rule_id": 7, "state": "active"},  # malformed
            VIP,
        ],
        SPARKOV,
        RuleSet(),
    )
    rules = {(r.rule_id, r.version, r.state) for r in built.rule_set.rules}
    assert rules == {(1, 3, "active"), (2, 1, "shadow")}
    assert built.rule_set.lists["vip_cards"] == frozenset({RECORD["card"], "5"})
    skipped = {s.rule_id: s.error for s in built.skipped}
    assert set(skipped) == {5, 6, 7}
    assert "no_such_field" in skipped[5]
    found = built.rule_set.evaluate(SPARKOV.variables(RECORD, FEATURES))
    assert [r.rule_id for r in found.shadow] == [2]


def test_the_rules_files_rules_stay_beside_the_published_ones():
    live = LiveRules.of(SPARKOV, policy.Rules(deny_cards=frozenset({RECORD["card"]})))
    assert [r.rule_id for r in live.rule_set.rules] == ["deny_list"]
    # An analyst's list named like the file's cannot change what the file's rule reads.
    shadowing = {**VIP, "name": "legacy_deny_cards", "items": ["someone else"]}
    live.apply([rule(1, 1, "active", "amount > 100"), shadowing])
    assert {r.rule_id for r in live.rule_set.rules} == {"deny_list", 1}
    found = live.rule_set.evaluate(SPARKOV.variables(RECORD, FEATURES))
    assert found.matched[0].rule_id == "deny_list"
    assert found.hits()[0] == {
        "id": "deny_list",
        "version": None,
        "action": "block",
        "shadow": False,
    }


def test_offers_wait_for_the_scorer_and_the_latest_wins():
    live = LiveRules.of(SPARKOV, policy.Rules())
    live.expect_published()
    assert not live.ready and not live.pending
    live.offer([rule(1, 1, "active", "amount > 100")])
    live.offer([rule(1, 2, "active", "amount > 200")])  # before the scorer took the first
    assert live.rule_set.rules == ()  # nothing changes until the scorer applies it
    live.apply(live.take())
    assert live.ready and not live.pending and live.take() is None
    assert [(r.rule_id, r.version) for r in live.rule_set.rules] == [(1, 2)]
    status = live.status()
    assert status["running"] == [{"id": 1, "version": 2, "state": "active", "action": "block"}]
    # A set with only a rule that cannot compile: applied (the others go), reported.
    live.apply([rule(1, 3, "active", "no_such_field > 1")])
    assert live.rule_set.rules == () and [s["id"] for s in live.status()["skipped"]] == [1]
