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
from models.decisions.policy import Rules, decide
from models.detectors.bundle import ModelBundle


def feature_matrix(
    bundle: ModelBundle, features: Sequence[dict[str, float | str | None]] | pd.DataFrame
) -> np.ndarray:
    """Rows in the model's feature order (the order its manifest records): one feature
    dict per transaction, or a batch DataFrame; categorical values become their codes
    (unseen or missing ones NaN)."""
    return bundle.matrix(features)


def build_decisions(
    bundle: ModelBundle,
    rules: Rules,
    items: Sequence[tuple[dict, dict[str, float], int | None]],
    decided_at: str | None = None,
    entity_keys: Callable[[Mapping], dict[str, str | None]] | None = None,
) -> list[dict]:
    """One decision per (normalised record, features, ingested_ms), scored as one batch.

    The decision JSON is the one documented for aegis.decisions (docs/DEVELOPING.md):
    the record's ids, amount and time under their normalised names, its configured extra
    fields in ``fields``, and in ``entities`` the key of each entity its labels must reach
    (`entity_keys`: the config's StreamEngine.keys; by default the card and the merchant).
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
        action, reasons = decide(score, bundle.thresholds, tx, features, rules, explanations)
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
                "model_version": bundle.version,
                "features": features,
                "ingested_ms": ingested_ms,
                "decided_at": decided_at,
            }
        )
    return decisions


def _card_and_merchant(tx: Mapping) -> dict[str, str | None]:
    return {"card": str(tx["card"]), "merchant": str(tx["merchant"])}
