"""The rules a scorer runs: the rules file's (models.rules.legacy) and the published ones,
as they stand on aegis.rules (aegis_app/kafka/rule_updates.py), swapped between batches.

`build_rule_set` is pure: the newest message per key (rule and list messages) to a
RuleSet. Only shadow and active rules are compiled; one that cannot be (this process's
config lacks a field it reads, a malformed message) is skipped and reported, never raised,
so a bad rule cannot stop a scorer.

`LiveRules` is what a scorer holds: the listener `offer`s the messages (on the event
loop), the scorer `take`s them between two batches and `apply`s them (in its scoring
thread), so a batch is decided wholly by one rule set.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from models.decisions.policy import Rules
from models.rules.expression import compile_expression
from models.rules.legacy import legacy_rule_set
from models.rules.rule import RUNNING, Rule, RuleSet
from models.rules.vocabulary import Vocabulary

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Skipped:
    """A published rule this process could not run, and why."""

    rule_id: Any
    version: Any
    error: str


@dataclass(frozen=True)
class Built:
    rule_set: RuleSet
    skipped: tuple[Skipped, ...] = ()


def build_rule_set(
    messages: Iterable[Mapping[str, Any]], vocabulary: Vocabulary, legacy: RuleSet
) -> Built:
    """The running rules of `messages` (the newest rule and list message per key, decoded
    by rule_updates.decode) and the rules file's, with every list they read."""
    messages = list(messages)
    lists: dict[str, frozenset[str]] = {}
    for message in messages:
        if message.get("kind") == "list" and isinstance(message.get("items"), list):
            lists[str(message.get("name"))] = frozenset(str(item) for item in message["items"])
    # The file's lists last: its rules must read its own items, whatever an analyst named.
    lists.update(legacy.lists)
    names = vocabulary.with_lists(lists)
    rules: list[Rule] = list(legacy.rules)
    skipped: list[Skipped] = []
    for message in messages:
        if message.get("kind") != "rule" or message.get("state") not in RUNNING:
            continue
        try:
            rules.append(_rule(message, names))
        except Exception as exc:  # noqa: BLE001 - any bad rule is skipped, never raised
            skipped.append(Skipped(message.get("rule_id"), message.get("version"), str(exc)))
    return Built(RuleSet(tuple(rules), lists), tuple(skipped))


def _rule(message: Mapping[str, Any], vocabulary: Vocabulary) -> Rule:
    return Rule(
        rule_id=int(message["rule_id"]),
        expression=compile_expression(message["expression"], vocabulary),
        action=message["action"],
        priority=int(message.get("priority") or 0),
        reason=str(message.get("reason") or ""),
        state=message["state"],
        version=int(message["version"]),
    )


@dataclass
class LiveRules:
    """The rule set of one scorer and the published messages waiting to replace it."""

    vocabulary: Vocabulary
    legacy: RuleSet
    rule_set: RuleSet = field(init=False)
    skipped: tuple[Skipped, ...] = ()
    # False while published rules are expected but none were applied yet (a worker does
    # not score before it knows which rules are active).
    ready: bool = True
    applied_at: str | None = None
    swaps: int = 0
    _pending: list[dict] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.rule_set = self.legacy

    @classmethod
    def of(cls, vocabulary: Vocabulary, rules_file: Rules) -> LiveRules:
        """The rules file's rules only, until published ones are applied."""
        return cls(vocabulary, legacy_rule_set(rules_file, vocabulary))

    def expect_published(self) -> None:
        """A listener will offer aegis.rules: not ready until its first offer is applied."""
        self.ready = False

    def offer(self, messages: list[dict]) -> None:
        """The newest message per key, as the listener now knows them (the latest offer
        replaces one not yet taken)."""
        self._pending = messages

    @property
    def pending(self) -> bool:
        return self._pending is not None

    def take(self) -> list[dict] | None:
        """The offered messages, once (on the event loop, before `apply` in a thread)."""
        messages, self._pending = self._pending, None
        return messages

    def apply(self, messages: list[dict]) -> Built:
        """Compile `messages` and make them the running rules (between two batches).
        Never raises: should building fail altogether, the running rules stay."""
        try:
            built = build_rule_set(messages, self.vocabulary, self.legacy)
        except Exception:  # a scorer must keep scoring, whatever the messages hold
            log.exception("rules not applied: the running rules stay")
            return Built(self.rule_set, self.skipped)
        for skipped in built.skipped:
            log.warning("rule %s v%s skipped: %s", skipped.rule_id, skipped.version, skipped.error)
        self.rule_set, self.skipped = built.rule_set, built.skipped
        self.ready = True
        self.swaps += 1
        self.applied_at = datetime.now(UTC).isoformat(timespec="milliseconds")
        log.info(
            "running %d rules (%d skipped)",
            sum(1 for r in built.rule_set.rules if r.version is not None),
            len(built.skipped),
        )
        return built

    def status(self) -> dict:
        """The rules part of a worker's /health/."""
        return {
            "ready": self.ready,
            "applied_at": self.applied_at,
            "swaps": self.swaps,
            "running": [
                {"id": r.rule_id, "version": r.version, "state": r.state, "action": r.action}
                for r in self.rule_set.rules
            ],
            "skipped": [
                {"id": s.rule_id, "version": s.version, "error": s.error} for s in self.skipped
            ],
        }
