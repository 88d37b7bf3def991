"""Logistic regression on standardised features: the Handbook's supervised baseline.

Fitted with sklearn; scored with the extracted arrays (a dot product), which also gives
exact per-feature contributions to the fraud log-odds for the reasons of an alert.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


class LogisticRegressionDetector:
    name = "logistic_regression"
    supervised = True

    def __init__(self, C: float = 1.0, class_weight: str | dict | None = None) -> None:
        self.model = make_pipeline(
            StandardScaler(), LogisticRegression(C=C, max_iter=1000, class_weight=class_weight)
        )

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> LogisticRegressionDetector:
        if y is None:
            raise ValueError("logistic_regression needs labels")
        self.model.fit(X, y)
        scaler, lr = self.model[0], self.model[-1]
        self.mean_ = scaler.mean_.astype(np.float64)
        self.scale_ = np.where(scaler.scale_ > 0, scaler.scale_, 1.0).astype(np.float64)
        self.coef_ = lr.coef_[0].astype(np.float64)
        self.intercept_ = float(lr.intercept_[0])
        return self

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Per row and feature, coef * standardised value: the terms of the log-odds."""
        return (np.asarray(X, dtype=np.float64) - self.mean_) / self.scale_ * self.coef_

    def score(self, X: np.ndarray) -> np.ndarray:
        z = ((np.asarray(X, dtype=np.float64) - self.mean_) / self.scale_) @ self.coef_
        return 1.0 / (1.0 + np.exp(-np.clip(z + self.intercept_, -500, 500)))
