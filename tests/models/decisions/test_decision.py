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


# ------------------------------------------------------------------ as before, per batch


def _decisions_before(bundle, rules, vocabulary, items, decided_at, engine):
    """build_decisions as it was: every step one row at a time."""
    import math

    from aegis_app.core.codec import CORE_KEYS
    from aegis_app.core.records import format_datetime
    from aegis_app.serving.store.repository import DECISION_FIELDS
    from models.rules.rule import Evaluation, decide
    from tables.engine.keys import key_text
    from tests.models.detectors.test_reference_scores import reference_explain

    # The documented order (docs/DEVELOPING.md): the store's columns, and the rule errors.
    documented = list(DECISION_FIELDS)
    documented.insert(documented.index("rules") + 1, "rule_errors")
    X = bundle.matrix([features for _, features, _ in items])
    scores = bundle.score(X)
    review = bundle.thresholds.get("review", float("inf"))
    out = []
    for i, (tx, features, ingested_ms) in enumerate(items):
        score = float(scores["ensemble"][i])
        explanations = reference_explain(bundle, X[i]) if score >= review else []
        found = rules.evaluate(vocabulary.variables(tx, features)) if rules.rules else Evaluation()
        action, reasons = decide(score, bundle.thresholds, found, explanations)
        record = {key: tx[key] for key in ("transaction_id", "card", "merchant", "amount", "ts")}
        record.update(
            tx_datetime=format_datetime(tx["ts"]),
            fields={
                k: None if isinstance(v, float) and math.isnan(v) else v
                for k, v in tx.items()
                if k not in CORE_KEYS
            },
            entities={
                name: key_text(tx[e.column], e.key_is_numeric)
                for name, e in engine.plan.entities.items()
            },
            action=action,
            score=score,
            scores={name: float(values[i]) for name, values in scores.items()},
            reasons=reasons,
            rules=found.hits(),
            rule_errors=found.error_list(),
            model_version=bundle.version,
            features=features,
            ingested_ms=ingested_ms,
            decided_at=decided_at,
        )
        out.append({key: record[key] for key in documented})
    return out


def test_decisions_are_the_ones_made_row_by_row_before(fitted_bundle, data):
    """The same JSON, byte for byte, with and without rules, for allowed, reviewed and
    blocked transactions, extra fields, missing values and entity keys."""
    import numpy as np

    from aegis_app.kafka.raw_producer import dumps
    from tables.engine import StreamEngine

    engine = StreamEngine(HANDBOOK)
    X, y = data[0][:600].copy(), data[1][:600]
    X[::17, HANDBOOK_FEATURES.index(RATIO)] = np.nan
    items = []
    for i, (x, label) in enumerate(zip(X, y)):
        tx = {
            "transaction_id": f"t{i}",
            "card": str(i % 37),
            "merchant": i % 11,  # a number: its key is its text
            "amount": float(x[0]),
            "ts": 1_527_678_507 + 97 * i,
        }
        if i % 3 == 0:
            tx.update(channel="web", score_hint=float("nan") if i % 2 else 0.5)
        items.append(
            (tx, dict(zip(HANDBOOK_FEATURES, map(float, x))), 1_000 + i if label else None)
        )
    rule_sets = [
        RuleSet(),
        RuleSet(
            (
                rule(1, 1, "amount > 150.0", "review"),
                rule(2, 3, "amount > 400.0", "block"),
                rule(3, 1, "amount < 2.0", "allow"),
                rule(4, 1, "amount > 50.0", "tag"),
                rule(5, 2, "amount > 0.0", "block", state=SHADOW),
                rule(6, 1, f"{RATIO} > 1000.0", "block"),  # null ratio: an error
            )
        ),
    ]
    for rules in rule_sets:
        now = build_decisions(
            fitted_bundle, rules, VOCABULARY, items, "2026-12-04T00:00:00.000+00:00", engine.keys
        )
        before = _decisions_before(
            fitted_bundle, rules, VOCABULARY, items, "2026-12-04T00:00:00.000+00:00", engine
        )
        assert [dumps(d) for d in now] == [dumps(d) for d in before]
        actions = {d["action"] for d in now}
        assert {"allow", "review", "block"} <= actions
        assert any(r.startswith("FEATURE ") for d in now for r in d["reasons"])
    assert any(d["rule_errors"] for d in now) and any(d["rules"] for d in now)
    # The default entity keys: the card and the merchant as text.
    (first,) = build_decisions(fitted_bundle, RuleSet(), VOCABULARY, items[:1])
    assert first["entities"] == {"card": "0", "merchant": "0"}
    assert build_decisions(fitted_bundle, RuleSet(), VOCABULARY, []) == []
