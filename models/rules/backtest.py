"""A rule run over stored decisions: what it would have done, against what the model did
and what the labels say. A pure function over rows, so it is tested without a store.

Each row is a stored decision (aegis_app.serving.store: transaction_id, card, merchant,
amount, ts, tx_datetime, fields, features, and the action the model and rules of the
time gave); `labels` maps transaction ids to their latest known label (1 fraud).

- hits: transactions the rule matches; per day (UTC event day) with the rows seen;
- added alerts: hits the stored decision allowed, for a review or block rule (what the
  analysts would see more); per day with data;
- overlap: hits the stored decision already flagged (review or block);
- precision: fraud hits / labelled hits; recall: fraud hits / labelled frauds (null
  when nothing is labelled);
- errors: rows the rule could not answer (a missing value, a type error), with examples.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from models.rules.rule import ALLOW, BLOCK, REVIEW, Rule
from models.rules.vocabulary import Vocabulary

ERROR_EXAMPLES = 5


def backtest(
    rule: Rule,
    rows: Iterable[Mapping[str, Any]],
    labels: Mapping[str, int],
    vocabulary: Vocabulary,
    lists: Mapping[str, frozenset[str]],
) -> dict[str, Any]:
    days: dict[str, dict[str, int]] = defaultdict(
        lambda: {"rows": 0, "hits": 0, "added_alerts": 0, "model_alerts": 0}
    )
    alerting = rule.action in (REVIEW, BLOCK)
    n = hits = added = overlap = model_alerts = errors = 0
    labelled_hits = fraud_hits = labelled_frauds = 0
    examples: list[dict[str, str]] = []
    for row in rows:
        n += 1
        transaction_id = str(row["transaction_id"])
        day = days[str(row["tx_datetime"])[:10]]
        day["rows"] += 1
        flagged = row.get("action") != ALLOW
        model_alerts += flagged
        day["model_alerts"] += flagged
        label = labels.get(transaction_id)
        labelled_frauds += label == 1
        matched, error = rule.expression.test(vocabulary.row_variables(row), lists)
        if error is not None:
            errors += 1
            if len(examples) < ERROR_EXAMPLES:
                examples.append({"transaction_id": transaction_id, "error": error})
            continue
        if not matched:
            continue
        hits += 1
        day["hits"] += 1
        overlap += flagged
        if alerting and not flagged:
            added += 1
            day["added_alerts"] += 1
        if label is not None:
            labelled_hits += 1
            fraud_hits += label == 1
    per_day = [{"day": name, **counts} for name, counts in sorted(days.items())]
    return {
        "rows": n,
        "hits": hits,
        "errors": errors,
        "error_examples": examples,
        "days": per_day,
        "added_alerts": added,
        "added_alerts_per_day": added / len(per_day) if per_day else 0.0,
        "max_added_alerts_in_a_day": max((d["added_alerts"] for d in per_day), default=0),
        "model_alerts": model_alerts,
        "overlap": overlap,
        "overlap_share_of_hits": overlap / hits if hits else None,
        "overlap_share_of_model_alerts": overlap / model_alerts if model_alerts else None,
        "labelled_hits": labelled_hits,
        "fraud_hits": fraud_hits,
        "labelled_frauds": labelled_frauds,
        "precision": fraud_hits / labelled_hits if labelled_hits else None,
        "recall": fraud_hits / labelled_frauds if labelled_frauds else None,
    }
