"""In-process counters of one worker, shown by its web view (and later /metrics)."""

from __future__ import annotations

import logging
from collections import Counter, deque

from models.decisions.decision import rule_outcomes

log = logging.getLogger(__name__)


class WorkerCounters:
    """What one worker has seen and done since it started.

    `counts` holds the event counters; the model counters (agents/scoring.py) are
    model_loads, model_refusals, model_announcements (model-update announcements heard),
    model_swaps and model_swaps_on_announcement / model_swaps_on_poll (what made the
    worker switch versions); the rule counters are rule_updates (rule sets heard),
    rule_swaps (applied) and rules_skipped (published rules it could not compile).

    `rule_hits` counts each rule version's matches by (rule id, version, "active" or
    "shadow"), `rule_errors` its runtime errors by (rule id, version).
    """

    def __init__(self, recent_alerts: int = 200) -> None:
        self.counts: Counter[str] = Counter()
        # The latest alerts this worker raised, newest last, for the web view.
        self.recent_alerts: deque[dict] = deque(maxlen=recent_alerts)
        # The most a transaction reached an entity state behind that state's newest event:
        # delayed entity features are exact while it stays under the label delay (a later
        # one may have been missed by a transaction that should have counted it;
        # docs/FEATURES.md, "State").
        self.max_lateness_seconds = 0
        self.rule_hits: Counter[tuple[str, str, str]] = Counter()
        self.rule_errors: Counter[tuple[str, str]] = Counter()

    def count_rules(self, decision: dict) -> None:
        """Count the rule hits and errors one decision names; the first error of each rule
        version is logged (the rest only counted: one bad rule could flood the log)."""
        for mode, rule, version, error in rule_outcomes(decision):
            if mode != "error":
                self.rule_hits[rule, version, mode] += 1
                continue
            self.rule_errors[rule, version] += 1
            if self.rule_errors[rule, version] == 1:
                log.warning(
                    "rule %s v%s could not be answered for transaction %s (skipped; counted "
                    "from now on): %s",
                    rule,
                    version,
                    decision.get("transaction_id"),
                    error,
                )

    def saw_lateness(self, seconds: int) -> None:
        self.max_lateness_seconds = max(self.max_lateness_seconds, seconds)
