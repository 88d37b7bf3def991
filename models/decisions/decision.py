"""Scores to decision records: the one function the stream's micro-batch scorer
(agents/scoring.py) and the REST API's synchronous scoring both use, so the same
transaction with the same features gets the same score, action and reasons."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from aegis_app.core.codec import extra_fields
from aegis_app.core.records import format_datetimes
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

    Stages (each timed by scripts/score_profile.py): the feature matrix, the models, the
    explanations of the rows at or above review, the rules and actions, the records.
    """
    if not items:
        return []
    X = feature_matrix(bundle, [item[1] for item in items])
    scores = bundle.score(X)
    explanations = explain_alerts(bundle, X, scores["ensemble"])
    outcomes = decide_all(bundle, rules, vocabulary, items, scores["ensemble"], explanations)
    decided_at = decided_at or datetime.now(UTC).isoformat(timespec="milliseconds")
    return decision_records(bundle, items, scores, outcomes, decided_at, entity_keys)


def explain_alerts(bundle: ModelBundle, X: np.ndarray, ensemble: np.ndarray) -> list[list[str]]:
    """Per row, the model's reasons if its score is at or above review, else none."""
    review = bundle.thresholds.get("review", float("inf"))
    alerts = np.flatnonzero(ensemble >= review)
    out: list[list[str]] = [[] for _ in range(len(X))]
    for i, reasons in zip(alerts.tolist(), bundle.explain_rows(X[alerts])):
        out[i] = reasons
    return out


# Per row of decide_all: (matching rules, rule errors, action, reasons).
Outcome = tuple[list[dict], list[dict], str, list[str]]


def decide_all(
    bundle: ModelBundle,
    rules: RuleSet,
    vocabulary: Vocabulary,
    items: Sequence[tuple[dict, dict[str, float], int | None]],
    ensemble: np.ndarray,
    explanations: Sequence[Sequence[str]],
) -> list[Outcome]:
    """Each row's rule evaluation and models.rules.rule.decide's action and reasons."""
    thresholds = bundle.thresholds
    running = bool(rules.rules)
    out: list[Outcome] = []
    for (tx, features, _), score, reasons in zip(items, ensemble.tolist(), explanations):
        if running:
            found = rules.evaluate(vocabulary.variables(tx, features))
            hits, errors = found.hits(), found.error_list()
        else:  # no rule to run (the common case): no variables to build, nothing found
            found, hits, errors = _NONE, [], []
        out.append((hits, errors, *decide(score, thresholds, found, reasons)))
    return out


_NONE = Evaluation()  # what a rule set without rules finds (never changed)


def decision_records(
    bundle: ModelBundle,
    items: Sequence[tuple[dict, dict[str, float], int | None]],
    scores: Mapping[str, np.ndarray],
    outcomes: Sequence[Outcome],
    decided_at: str,
    entity_keys: Callable[[Mapping], dict[str, str | None]] | None = None,
) -> list[dict]:
    """The decision records (docs/DEVELOPING.md), per-batch values converted once."""
    entity_keys = entity_keys or _card_and_merchant
    names = list(scores)
    per_row = zip(*(scores[name].tolist() for name in names))
    ensemble = scores["ensemble"].tolist()
    times = format_datetimes([item[0]["ts"] for item in items])
    version = bundle.version
    return [
        {
            "transaction_id": tx["transaction_id"],
            "card": tx["card"],
            "merchant": tx["merchant"],
            "amount": tx["amount"],
            "ts": tx["ts"],
            "tx_datetime": tx_datetime,
            "fields": extra_fields(tx),
            "entities": entity_keys(tx),
            "action": action,
            "score": score,
            "scores": dict(zip(names, row_scores)),
            "reasons": reasons,
            "rules": hits,
            "rule_errors": errors,
            "model_version": version,
            "features": features,
            "ingested_ms": ingested_ms,
            "decided_at": decided_at,
        }
        for (tx, features, ingested_ms), (
            hits,
            errors,
            action,
            reasons,
        ), score, row_scores, tx_datetime in zip(items, outcomes, ensemble, per_row, times)
    ]


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
