"""Rules and rule sets: which rules match a transaction, and the action and reasons they
give together with the model's thresholds.

A rule is an expression (models.rules.expression), an action, a priority and a reason:

- ``block`` and ``allow`` are final: when the highest-priority matching rule says so, the
  model's score does not change the action (as the deny and allow lists always were);
- ``review`` asks for review at least: the model's thresholds may still raise it to block;
- ``tag`` only adds its reason to the decision, whatever the action.

Among the matching rules the highest priority wins (ties: the lower rule id). Rules in
state ``shadow`` are evaluated and reported but never change a decision; ``draft`` and
``retired`` rules are not run. A rule that cannot be answered for a transaction (a missing
value, a type error) is skipped and reported in `Evaluation.errors`; nothing raises.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from models.rules.expression import Expression

ALLOW, REVIEW, BLOCK, TAG = "allow", "review", "block", "tag"
ACTIONS = (ALLOW, REVIEW, BLOCK, TAG)
DRAFT, SHADOW, ACTIVE, RETIRED = "draft", "shadow", "active", "retired"
STATES = (DRAFT, SHADOW, ACTIVE, RETIRED)
RUNNING = (SHADOW, ACTIVE)


@dataclass(frozen=True)
class Rule:
    rule_id: int | str
    expression: Expression
    action: str
    priority: int = 0
    reason: str = ""
    state: str = ACTIVE
    # None for the rules file's rules (models.rules.legacy): they have no versions.
    version: int | None = 1

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"action: expected one of {', '.join(ACTIONS)}, got {self.action!r}")
        if self.state not in STATES:
            raise ValueError(f"state: expected one of {', '.join(STATES)}, got {self.state!r}")

    @property
    def name(self) -> str:
        """How decisions name it: ``3 v4`` (rule 3, version 4), or the file rule's id."""
        return str(self.rule_id) if self.version is None else f"{self.rule_id} v{self.version}"

    @property
    def text(self) -> str:
        """The reason as a decision carries it."""
        return f"RULE {self.name}: {self.reason or self.expression.source}"


@dataclass
class Evaluation:
    """What the running rules said about one transaction, highest priority first."""

    matched: list[Rule] = field(default_factory=list)  # active rules that matched
    shadow: list[Rule] = field(default_factory=list)  # shadow rules that matched
    errors: list[tuple[Rule, str]] = field(default_factory=list)  # (rule, why)

    def hits(self) -> list[dict[str, Any]]:
        """Every matching rule as a decision names it (docs/DEVELOPING.md)."""
        return [
            {"id": r.rule_id, "version": r.version, "action": r.action, "shadow": r.state == SHADOW}
            for r in (*self.matched, *self.shadow)
        ]

    def error_list(self) -> list[dict[str, Any]]:
        """Every rule that could not be answered, and why."""
        return [{"id": r.rule_id, "version": r.version, "error": why} for r, why in self.errors]


@dataclass(frozen=True)
class RuleSet:
    """The rules a scorer runs and the lists they read (name -> items as text)."""

    rules: tuple[Rule, ...] = ()
    lists: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ordered = sorted(
            (r for r in self.rules if r.state in RUNNING),
            key=lambda r: (-r.priority, str(r.rule_id)),
        )
        object.__setattr__(self, "rules", tuple(ordered))

    def evaluate(self, variables: Mapping[str, Any]) -> Evaluation:
        """Run every shadow and active rule on one transaction's variables
        (models.rules.vocabulary.Vocabulary.variables)."""
        out = Evaluation()
        for rule in self.rules:
            matched, error = rule.expression.test(variables, self.lists)
            if error is not None:
                out.errors.append((rule, error))
            elif matched:
                (out.matched if rule.state == ACTIVE else out.shadow).append(rule)
        return out


def decide(
    score: float,
    thresholds: Mapping[str, float],
    evaluation: Evaluation,
    explanations: Sequence[str] = (),
) -> tuple[str, list[str]]:
    """The action and the reasons: the matching rules first, then the model.

    Same precedence as models.decisions.policy.decide: a final rule (block, allow) stops
    there; review rules and the model's thresholds otherwise give the stronger action.
    """
    lowest = min(thresholds.get("review", float("inf")), thresholds.get("block", float("inf")))
    if not evaluation.matched and score < lowest:
        return ALLOW, []  # most transactions: nothing fired, below both thresholds
    tags = [r.text for r in evaluation.matched if r.action == TAG]
    deciding = [r for r in evaluation.matched if r.action != TAG]
    if deciding and deciding[0].action in (BLOCK, ALLOW):
        return deciding[0].action, [deciding[0].text, *tags]
    # The winner asks for review: every matching review rule says why (lower-priority
    # block or allow rules lost to it).
    reasons = [r.text for r in deciding if r.action == REVIEW]
    action = REVIEW if deciding else ALLOW
    if score >= thresholds.get("block", float("inf")):
        action = BLOCK
        reasons.append(f"MODEL score {score:.4f} >= block threshold {thresholds['block']:.4f}")
    elif score >= thresholds.get("review", float("inf")):
        action = REVIEW
        reasons.append(f"MODEL score {score:.4f} >= review threshold {thresholds['review']:.4f}")
    reasons.extend(tags)
    if action != ALLOW:
        reasons.extend(f"FEATURE {text}" for text in explanations)
    return action, reasons
