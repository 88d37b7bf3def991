"""From scores to a decision: rules first, then the model thresholds, with reasons.

Rules (optional JSON file, AEGIS_RULES_FILE):
    {"deny_cards": [..], "allow_cards": [..], "deny_merchants": [..],
     "amount_cap": 5000.0, "velocity_cap_1d": 20,
     "velocity_feature": "CUSTOMER_ID_NB_TX_1DAY_WINDOW"}

Card and merchant ids are compared as text (the normalised record's ids);
"deny_terminals" is read as "deny_merchants".
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

ALLOW, REVIEW, BLOCK = "allow", "review", "block"


@dataclass(frozen=True)
class Rules:
    deny_cards: frozenset[str] = field(default_factory=frozenset)
    allow_cards: frozenset[str] = field(default_factory=frozenset)
    deny_merchants: frozenset[str] = field(default_factory=frozenset)
    amount_cap: float | None = None
    velocity_cap_1d: int | None = None
    # The feature the velocity cap reads: the config's 1-day card count.
    velocity_feature: str = "CUSTOMER_ID_NB_TX_1DAY_WINDOW"

    @classmethod
    def from_file(cls, path: Path | None) -> Rules:
        if path is None or not Path(path).exists():
            return cls()
        data = json.loads(Path(path).read_text())
        return cls(
            deny_cards=frozenset(str(c) for c in data.get("deny_cards", [])),
            allow_cards=frozenset(str(c) for c in data.get("allow_cards", [])),
            deny_merchants=frozenset(
                str(m) for m in data.get("deny_merchants", data.get("deny_terminals", []))
            ),
            amount_cap=data.get("amount_cap"),
            velocity_cap_1d=data.get("velocity_cap_1d"),
            velocity_feature=data.get("velocity_feature", cls.velocity_feature),
        )


def decide(
    score: float,
    thresholds: dict[str, float],
    tx: dict,
    features: dict[str, float],
    rules: Rules,
    explanations: list[str],
) -> tuple[str, list[str]]:
    """The action and the reasons a person can read, rules before the model."""
    card, merchant = str(tx["card"]), str(tx["merchant"])
    if card in rules.deny_cards:
        return BLOCK, ["RULE deny_list: card is on the deny list"]
    if merchant in rules.deny_merchants:
        return BLOCK, ["RULE deny_list: merchant is on the deny list"]
    if card in rules.allow_cards:
        return ALLOW, ["RULE allow_list: card is on the allow list"]
    reasons = []
    action = ALLOW
    if rules.amount_cap is not None and tx["amount"] > rules.amount_cap:
        action = REVIEW
        reasons.append(f"RULE amount_cap: amount {tx['amount']:.2f} > {rules.amount_cap:.2f}")
    velocity = features.get(rules.velocity_feature) or 0
    if rules.velocity_cap_1d is not None and velocity > rules.velocity_cap_1d:
        action = REVIEW
        reasons.append(
            f"RULE velocity_cap: {velocity:.0f} transactions in 1 day > {rules.velocity_cap_1d}"
        )
    if score >= thresholds.get("block", float("inf")):
        action = BLOCK
        reasons.append(f"MODEL score {score:.4f} >= block threshold {thresholds['block']:.4f}")
    elif score >= thresholds.get("review", float("inf")):
        action = REVIEW if action == ALLOW else action
        reasons.append(f"MODEL score {score:.4f} >= review threshold {thresholds['review']:.4f}")
    if action != ALLOW:
        reasons.extend(f"FEATURE {text}" for text in explanations)
    return action, reasons
