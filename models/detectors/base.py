"""The one interface every detector follows (River-style: one estimator per module)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Detector(Protocol):
    """Fit on a feature matrix; score a batch into an array, higher = more suspicious."""

    name: str
    # True when fit() needs labels (y); unsupervised detectors ignore y.
    supervised: bool

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> Detector: ...

    def score(self, X: np.ndarray) -> np.ndarray: ...
