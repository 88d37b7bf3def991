"""The JSON rules file of before, as rules: the same action as policy.decide for any
transaction, score and file."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from aegis_app.core import config as config_files
from models.decisions import policy
from models.rules import rule
from models.rules.legacy import legacy_rule_set
from models.rules.vocabulary import Vocabulary
from tests.models.rules.test_expression import CONFIGS

HANDBOOK = Vocabulary.from_config(config_files.load(CONFIGS / "handbook.toml"))
THRESHOLDS = {"review": 0.5, "block": 0.9}
IDS = st.sampled_from(["1", "2", "0007"])
FILES = st.builds(
    policy.Rules,
    deny_cards=st.frozensets(IDS, max_size=2),
    allow_cards=st.frozensets(IDS, max_size=2),
    deny_merchants=st.frozensets(IDS, max_size=2),
    amount_cap=st.none() | st.floats(0, 500),
    velocity_cap_1d=st.none() | st.integers(0, 5),
)


@settings(max_examples=300, deadline=None)
@given(
    rules=FILES,
    card=IDS,
    merchant=IDS,
    amount=st.floats(0, 1000),
    velocity=st.integers(0, 8),
    score=st.floats(0, 1),
)
def test_same_action_as_the_policy(rules, card, merchant, amount, velocity, score):
    tx = {"transaction_id": "t", "card": card, "merchant": merchant, "amount": amount, "ts": 0}
    features = {"CUSTOMER_ID_NB_TX_1DAY_WINDOW": float(velocity)}
    expected, old_reasons = policy.decide(score, THRESHOLDS, tx, features, rules, ["why"])
    rule_set = legacy_rule_set(rules, HANDBOOK)
    found = rule_set.evaluate(HANDBOOK.variables(tx, features))
    assert found.errors == []
    action, reasons = rule.decide(score, THRESHOLDS, found, ["why"])
    assert action == expected
    # the same checks are named: RULE deny_list / allow_list / amount_cap / velocity_cap
    names = {r.split(":")[0].split("_merchant")[0] for r in reasons if r.startswith("RULE")}
    assert names == {r.split(":")[0] for r in old_reasons if r.startswith("RULE")}


def test_a_velocity_feature_the_config_lacks_never_fires():
    sparkov = Vocabulary.from_config(config_files.load(CONFIGS / "sparkov.toml"))
    rule_set = legacy_rule_set(policy.Rules(velocity_cap_1d=0), sparkov)
    assert rule_set.rules == ()
