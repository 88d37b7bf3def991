"""Tree ensembles packed into flat numpy arrays, traversed for all trees at once.

sklearn's tree-ensemble predict paths carry a fixed cost per call (joblib dispatch in
IsolationForest, OpenMP start-up in HistGradientBoosting: milliseconds, far worse on a
busy machine), which dominates a micro-batch of a few events. Packing every node of every
tree into arrays lets one vectorised step move all (row, tree) pairs one level down; a
forest of depth d costs d numpy steps per batch. The results equal sklearn's (tested).
"""

from __future__ import annotations

import numpy as np


class PackedForest:
    """All trees' nodes in flat arrays. A leaf points to itself, so extra steps are no-ops."""

    def __init__(
        self,
        feature: np.ndarray,
        threshold: np.ndarray,
        left: np.ndarray,
        right: np.ndarray,
        missing_left: np.ndarray,
        value: np.ndarray,
        roots: np.ndarray,
        depth: int,
        float32_inputs: bool = False,
    ) -> None:
        self.feature = feature.astype(np.intp)
        self.threshold = threshold.astype(np.float64)
        self.left = left.astype(np.intp)
        self.right = right.astype(np.intp)
        self.missing_left = missing_left.astype(bool)
        self.value = value.astype(np.float64)
        self.roots = roots.astype(np.intp)
        self.depth = int(depth)
        # sklearn's DecisionTree compares float32-cast inputs with its thresholds.
        self.float32_inputs = float32_inputs

    def leaf_values(self, X: np.ndarray) -> np.ndarray:
        """(n_rows, n_trees) value of the leaf each row reaches in each tree."""
        X = np.asarray(X, dtype=np.float64)
        if self.float32_inputs:
            X = X.astype(np.float32).astype(np.float64)
        rows = np.arange(len(X))[:, None]
        node = np.broadcast_to(self.roots, (len(X), len(self.roots))).copy()
        for _ in range(self.depth):
            x = X[rows, self.feature[node]]
            go_left = (x <= self.threshold[node]) | (np.isnan(x) & self.missing_left[node])
            node = np.where(go_left, self.left[node], self.right[node])
        return self.value[node]


def _pack(trees: list[dict], float32_inputs: bool) -> PackedForest:
    parts = {k: [] for k in ("feature", "threshold", "left", "right", "missing_left", "value")}
    roots, offset, depth = [], 0, 0
    for tree in trees:
        n = len(tree["value"])
        own = np.arange(n) + offset
        leaf = tree["is_leaf"]
        parts["feature"].append(np.where(leaf, 0, tree["feature"]))
        parts["threshold"].append(np.where(leaf, 0.0, tree["threshold"]))
        parts["left"].append(np.where(leaf, own, tree["left"] + offset))
        parts["right"].append(np.where(leaf, own, tree["right"] + offset))
        parts["missing_left"].append(tree["missing_left"])
        parts["value"].append(tree["value"])
        roots.append(offset)
        offset += n
        depth = max(depth, tree["depth"])
    return PackedForest(
        **{k: np.concatenate(v) for k, v in parts.items()},
        roots=np.array(roots),
        depth=depth,
        float32_inputs=float32_inputs,
    )


def _node_depths(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    depth = np.zeros(len(left), dtype=np.intp)
    for node in range(len(left)):  # sklearn numbers children after their parent
        if left[node] >= 0:
            depth[left[node]] = depth[right[node]] = depth[node] + 1
    return depth


def pack_hist_gradient_boosting(model) -> tuple[PackedForest, float]:
    """A fitted binary HistGradientBoostingClassifier: (forest of leaf values, baseline).

    Raw log-odds = baseline + sum of leaf values; probability = sigmoid(raw).
    """
    if model.n_trees_per_iteration_ != 1:
        raise ValueError("only binary classifiers are packed")
    trees = []
    for (predictor,) in model._predictors:
        nodes = predictor.nodes
        if nodes["is_categorical"].any():
            raise ValueError("categorical splits are not packed")
        trees.append(
            {
                "is_leaf": nodes["is_leaf"].astype(bool),
                "feature": nodes["feature_idx"],
                "threshold": nodes["num_threshold"],
                "left": nodes["left"].astype(np.intp),
                "right": nodes["right"].astype(np.intp),
                "missing_left": nodes["missing_go_to_left"].astype(bool),
                "value": nodes["value"],
                "depth": int(nodes["depth"].max()),
            }
        )
    return _pack(trees, float32_inputs=False), float(np.ravel(model._baseline_prediction)[0])


def pack_isolation_forest(model) -> tuple[PackedForest, float]:
    """A fitted IsolationForest: (forest of per-leaf path lengths, normaliser).

    Anomaly score (sklearn's -score_samples) = 2 ** (-sum of leaf values / normaliser).
    """
    from sklearn.ensemble._iforest import _average_path_length

    trees = []
    for i, (est, features) in enumerate(zip(model.estimators_, model.estimators_features_)):
        t = est.tree_
        leaf = t.children_left == -1
        # Path length to a leaf + expected length of the unbuilt subtree below it.
        value = model._decision_path_lengths[i] + model._average_path_length_per_tree[i] - 1.0
        trees.append(
            {
                "is_leaf": leaf,
                "feature": np.asarray(features)[np.where(leaf, 0, t.feature)],
                "threshold": t.threshold,
                "left": t.children_left.astype(np.intp),
                "right": t.children_right.astype(np.intp),
                "missing_left": np.zeros(len(leaf), dtype=bool),
                "value": value,
                "depth": int(_node_depths(t.children_left, t.children_right).max()),
            }
        )
    normaliser = len(model.estimators_) * float(_average_path_length([model._max_samples])[0])
    return _pack(trees, float32_inputs=True), normaliser
