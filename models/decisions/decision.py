"""Scores to decision records: the one function the stream's micro-batch scorer
(agents/scoring.py) and the REST API's synchronous scoring both use, so the same
transaction with the same features gets the same score, action and reasons."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
import pandas as pd

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
) -> list[dict]:
    """One decision per (tx wire fields, features, ingested_ms), scored as one batch.

    The decision JSON is the one documented for aegis.decisions (docs/DEVELOPING.md).
    """
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
                "customer_id": tx["customer_id"],
                "terminal_id": tx["terminal_id"],
                "tx_amount": tx["tx_amount"],
                "tx_datetime": tx["tx_datetime"],
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
