"""Isolation Forest: unsupervised, isolates rare transactions with few random splits.

Scored from the trees packed into arrays (models/detectors/packed_trees.py, a compiled
traversal): the same values as sklearn's score_samples, without its per-call joblib
dispatch (milliseconds).
"""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import IsolationForest

from models.detectors.packed_trees import pack_isolation_forest


class IsolationForestDetector:
    name = "isolation_forest"
    supervised = False

    def __init__(self, n_estimators: int = 200, max_samples: int = 2048, seed: int = 0) -> None:
        self.model = IsolationForest(
            n_estimators=n_estimators, max_samples=max_samples, random_state=seed, n_jobs=1
        )

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> IsolationForestDetector:
        self.model.fit(X)
        self.packed_, self.normaliser_ = pack_isolation_forest(self.model)
        return self

    def score(self, X: np.ndarray) -> np.ndarray:
        # = -model.score_samples(X): higher = shorter paths = more suspicious.
        depths = self.packed_.total(X)
        return 2.0 ** (-depths / self.normaliser_)
