"""Scores to decision records: the one function the stream's micro-batch scorer
(agents/scoring.py) and the REST API's synchronous scoring both use, so the same
transaction with the same features gets the same score, action and reasons."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from aegis_app.core.codec import extra_fields
from aegis_app.core.records import format_datetime
from models.detectors.bundle import ModelBundle
from models.rules.rule import Evaluation, RuleSet, decide
from models.rules.vocabulary import Vocabulary


def feature_matrix(
    bundle: ModelBundle, features: Sequence[dict[str, float | str | None]] | pd.DataFrame
) -> np.ndarray:
    """Rows in the model's feature order (the order its manifest records): one feature
    dict per transaction, or a batch DataFrame; categorical values become their codes
    (unseen or missing ones NaN)."""
    return bundle.matrix(features)


def build_decisions(
    bundle: ModelBundle,
    rules: RuleSet,
    vocabulary: Vocabulary,
    items: Sequence[tuple[dict, dict[str, float], int | None]],
    decided_at: str | None = None,
    entity_keys: Callable[[Mapping], dict[str, str | None]] | None = None,
) -> list[dict]:
    """One decision per (normalised record, features, ingested_ms), scored as one batch.

    The decision JSON is the one documented for aegis.decisions (docs/DEVELOPING.md):
    the record's ids, amount and time under their normalised names, its configured extra
    fields in ``fields``, and in ``entities`` the key of each entity its labels must reach
    (`entity_keys`: the config's StreamEngine.keys; by default the card and the merchant),
    in ``rules`` every rule that matched (shadow ones flagged) and in ``rule_errors`` every
    rule that could not be answered for it (skipped: the model still decides).
    """
    entity_keys = entity_keys or _card_and_merchant
    if not items:
        return []
    X = feature_matrix(bundle, [item[1] for item in items])
    scores = bundle.score(X)
    decided_at = decided_at or datetime.now(UTC).isoformat(timespec="milliseconds")
    review = bundle.thresholds.get("review", float("inf"))
    decisions = []
    for i, (tx, features, ingested_ms) in enumerate(items):
        score = float(scores["ensemble"][i])
        explanations = bundle.explain(X[i]) if score >= review else []
        # No rule to run (the common case without rules): skip building its variables.
        found = rules.evaluate(vocabulary.variables(tx, features)) if rules.rules else Evaluation()
        action, reasons = decide(score, bundle.thresholds, found, explanations)
        decisions.append(
            {
                "transaction_id": tx["transaction_id"],
                "card": tx["card"],
                "merchant": tx["merchant"],
                "amount": tx["amount"],
                "ts": tx["ts"],
                "tx_datetime": format_datetime(tx["ts"]),
                "fields": extra_fields(tx),
                "entities": entity_keys(tx),
                "action": action,
                "score": score,
                "scores": {name: float(values[i]) for name, values in scores.items()},
                "reasons": reasons,
                "rules": found.hits(),
                "rule_errors": found.error_list(),
                "model_version": bundle.version,
                "features": features,
                "ingested_ms": ingested_ms,
                "decided_at": decided_at,
            }
        )
    return decisions


def rule_outcomes(decision: Mapping) -> list[tuple[str, str, str, str | None]]:
    """(``active``, ``shadow`` or ``error``, rule id, version, the error or None) for every
    rule a decision names; ids and versions as text (what metrics label them with)."""
    out: list[tuple[str, str, str, str | None]] = [
        ("shadow" if h.get("shadow") else "active", str(h.get("id")), str(h.get("version")), None)
        for h in decision.get("rules") or ()
    ]
    for error in decision.get("rule_errors") or ():
        out.append(("error", str(error.get("id")), str(error.get("version")), error.get("error")))
    return out


def _card_and_merchant(tx: Mapping) -> dict[str, str | None]:
    return {"card": str(tx["card"]), "merchant": str(tx["merchant"])}
