"""One-Class SVM that scales to millions of rows: standardise, approximate the RBF kernel
with Nystroem features, then fit a linear one-class SVM by SGD (`SGDOneClassSVM`).

A kernel OCSVM is O(n^2) in memory and time; this is O(n * n_components) and scores a
micro-batch with two small matrix products.
"""

from __future__ import annotations

import numpy as np
from sklearn.kernel_approximation import Nystroem
from sklearn.linear_model import SGDOneClassSVM
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


class OneClassSVMDetector:
    name = "ocsvm"
    supervised = False

    def __init__(
        self,
        nu: float = 0.05,
        gamma: float | None = None,
        n_components: int = 200,
        max_fit_rows: int = 200_000,
        seed: int = 0,
    ) -> None:
        self.nu = nu
        self.gamma = gamma
        self.n_components = n_components
        self.max_fit_rows = max_fit_rows
        self.seed = seed
        self.model = None

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> OneClassSVMDetector:
        X = np.asarray(X, dtype=np.float64)
        if len(X) > self.max_fit_rows:  # SGD converges long before; keep fit time bounded
            rng = np.random.default_rng(self.seed)
            X = X[np.sort(rng.choice(len(X), self.max_fit_rows, replace=False))]
        # RBF width: 1 / n_features on standardised data (sklearn's "scale" heuristic).
        gamma = self.gamma if self.gamma is not None else 1.0 / X.shape[1]
        self.model = make_pipeline(
            StandardScaler(),
            Nystroem(
                kernel="rbf",
                gamma=gamma,
                n_components=min(self.n_components, len(X)),
                random_state=self.seed,
            ),
            SGDOneClassSVM(nu=self.nu, random_state=self.seed, max_iter=50, tol=1e-4),
        )
        self.model.fit(X)
        # Plain arrays for scoring: the same maths as the pipeline without sklearn's
        # per-call input validation (~1 ms per micro-batch).
        scaler, nystroem, svm = self.model
        self.mean_ = scaler.mean_.copy()
        self.scale_ = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
        self.components_ = nystroem.components_.copy()
        self.component_sq_ = (self.components_**2).sum(axis=1)
        self.normalization_t_ = nystroem.normalization_.T.copy()
        self.gamma_ = float(nystroem.gamma)
        self.coef_ = svm.coef_.ravel().copy()
        self.offset_ = float(np.ravel(svm.offset_)[0])
        self.kernel_weights_ = self.normalization_t_ @ self.coef_
        return self

    def score(self, X: np.ndarray) -> np.ndarray:
        Z = (np.asarray(X, dtype=np.float64) - self.mean_) / self.scale_
        sq = (Z**2).sum(axis=1)[:, None] + self.component_sq_ - 2.0 * Z @ self.components_.T
        kernel = np.exp(-self.gamma_ * np.maximum(sq, 0.0))
        # decision_function is positive inside the learnt support: negate. The two linear
        # maps after the kernel (Nystroem's normalisation, the SVM's coefficients) are one
        # vector: a matrix-vector product per batch instead of a matrix product.
        return self.offset_ - kernel @ self._kernel_weights()

    def _kernel_weights(self) -> np.ndarray:
        weights = getattr(self, "kernel_weights_", None)
        if weights is None:  # detectors pickled before it was kept
            weights = self.kernel_weights_ = self.normalization_t_ @ self.coef_
        return weights
