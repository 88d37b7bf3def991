"""Tree ensembles packed into flat numpy arrays, traversed for all trees at once.

sklearn's tree-ensemble predict paths carry a fixed cost per call (joblib dispatch in
IsolationForest, OpenMP start-up in HistGradientBoosting: milliseconds, far worse on a
busy machine), which dominates a micro-batch of a few events. Packing every node of every
tree into arrays lets one vectorised step move all (row, tree) pairs one level down; a
forest of depth d costs d numpy steps per batch. The results equal sklearn's (tested).

Categorical splits (HistGradientBoosting with `categorical_features`) follow sklearn's
raw-data predictor: a node sends a category left when it is in the node's left bitset,
right when it is another category known at fit time, and the missing-value way otherwise
(NaN, negative, or a category the model never saw).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# A bitset of categories 0..255: 8 words of 32 bits (sklearn's layout).
BITSET_WORDS = 8
MAX_CATEGORY = BITSET_WORDS * 32 - 1


@dataclass
class CategoricalSplits:
    """Per node of a PackedForest: whether it splits on a category, and its bitsets.

    `encodings` maps an input column to the sorted raw values the model's own ordinal
    encoder learned: a raw value is replaced by its position there (NaN when absent)
    before traversal, as sklearn does.
    """

    is_categorical: np.ndarray  # (n_nodes,) bool
    left_bits: np.ndarray  # (n_nodes, 8) uint32: categories sent left
    known_bits: np.ndarray  # (n_nodes, 8) uint32: categories known for the node's feature
    encodings: dict[int, np.ndarray]

    def encode(self, X: np.ndarray) -> np.ndarray:
        if not self.encodings:
            return X
        X = X.copy()
        for column, categories in self.encodings.items():
            values = X[:, column]
            position = np.searchsorted(categories, values)
            inside = position < len(categories)
            found = inside & (categories[np.minimum(position, len(categories) - 1)] == values)
            X[:, column] = np.where(found, position, np.nan)
        return X

    def goes_left(self, node: np.ndarray, x: np.ndarray, missing_left: np.ndarray) -> np.ndarray:
        valid = ~np.isnan(x) & (x >= 0) & (x <= MAX_CATEGORY)
        code = np.where(valid, x, 0).astype(np.intp)  # truncated like sklearn's cast
        word, bit = code >> 5, (code & 31).astype(np.uint32)
        in_left = valid & (((self.left_bits[node, word] >> bit) & 1) == 1)
        in_known = valid & (((self.known_bits[node, word] >> bit) & 1) == 1)
        return in_left | (~in_known & missing_left)


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
        categorical: CategoricalSplits | None = None,
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
        self.categorical = categorical

    def leaf_values(self, X: np.ndarray) -> np.ndarray:
        """(n_rows, n_trees) value of the leaf each row reaches in each tree."""
        X = np.asarray(X, dtype=np.float64)
        if self.float32_inputs:
            X = X.astype(np.float32).astype(np.float64)
        categorical = getattr(self, "categorical", None)  # absent in older pickles
        if categorical is not None:
            X = categorical.encode(X)
        rows = np.arange(len(X))[:, None]
        node = np.broadcast_to(self.roots, (len(X), len(self.roots))).copy()
        for _ in range(self.depth):
            x = X[rows, self.feature[node]]
            missing_left = self.missing_left[node]
            go_left = (x <= self.threshold[node]) | (np.isnan(x) & missing_left)
            if categorical is not None:
                on_category = categorical.is_categorical[node]
                if on_category.any():
                    go_left[on_category] = categorical.goes_left(
                        node[on_category], x[on_category], missing_left[on_category]
                    )
            node = np.where(go_left, self.left[node], self.right[node])
        return self.value[node]


def _pack(
    trees: list[dict], float32_inputs: bool, encodings: dict[int, np.ndarray] | None = None
) -> PackedForest:
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
    categorical = None
    if any(tree.get("is_categorical") is not None for tree in trees):
        categorical = CategoricalSplits(
            is_categorical=np.concatenate([t["is_categorical"] for t in trees]).astype(bool),
            left_bits=np.concatenate([t["left_bits"] for t in trees]).astype(np.uint32),
            known_bits=np.concatenate([t["known_bits"] for t in trees]).astype(np.uint32),
            encodings=encodings or {},
        )
    return PackedForest(
        **{k: np.concatenate(v) for k, v in parts.items()},
        roots=np.array(roots),
        depth=depth,
        float32_inputs=float32_inputs,
        categorical=categorical,
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
    column_of, encodings, known_of = _categorical_layout(model)
    trees = []
    for (predictor,) in model._predictors:
        nodes = predictor.nodes
        is_leaf = nodes["is_leaf"].astype(bool)
        tree = {
            "is_leaf": is_leaf,
            # The trees index the model's internal column order; the forest reads ours.
            "feature": column_of[nodes["feature_idx"]],
            "threshold": nodes["num_threshold"],
            "left": nodes["left"].astype(np.intp),
            "right": nodes["right"].astype(np.intp),
            "missing_left": nodes["missing_go_to_left"].astype(bool),
            "value": nodes["value"],
            "depth": int(nodes["depth"].max()),
        }
        if known_of is not None:
            split = nodes["is_categorical"].astype(bool) & ~is_leaf
            left_bits = np.zeros((len(nodes), BITSET_WORDS), dtype=np.uint32)
            known_bits = np.zeros((len(nodes), BITSET_WORDS), dtype=np.uint32)
            if split.any():
                left_bits[split] = predictor.raw_left_cat_bitsets[nodes["bitset_idx"][split]]
                known_bits[split] = known_of[nodes["feature_idx"][split]]
            tree.update(is_categorical=split, left_bits=left_bits, known_bits=known_bits)
        elif nodes["is_categorical"].any():
            raise ValueError("a categorical split in a model fitted without categorical features")
        trees.append(tree)
    forest = _pack(trees, float32_inputs=False, encodings=encodings)
    return forest, float(np.ravel(model._baseline_prediction)[0])


def _categorical_layout(
    model,
) -> tuple[np.ndarray, dict[int, np.ndarray], np.ndarray | None]:
    """How a model fitted with categorical features sees its input.

    sklearn ordinal-encodes the categorical columns and moves them first; returns the
    input column of each internal column, the learned categories per input column, and
    per internal column its bitset of known categories (None without categoricals).
    """
    n_features = int(model.n_features_in_)
    preprocessor = getattr(model, "_preprocessor", None)
    if preprocessor is None:
        return np.arange(n_features, dtype=np.intp), {}, None
    mask = np.asarray(model.is_categorical_, dtype=bool)
    categorical_columns = np.flatnonzero(mask)
    # The ColumnTransformer's output: the encoder's columns, then the numerical ones.
    order = np.empty(n_features, dtype=np.intp)
    order[preprocessor.output_indices_["encoder"]] = categorical_columns
    order[preprocessor.output_indices_["numerical"]] = np.flatnonzero(~mask)
    encoder = preprocessor.named_transformers_["encoder"]
    encodings = {}
    for column, categories in zip(categorical_columns, encoder.categories_):
        categories = np.asarray(categories, dtype=np.float64)
        encodings[int(column)] = categories[~np.isnan(categories)]  # NaN: missing, not a code
    known, feature_to_row = model._bin_mapper.make_known_categories_bitsets()
    known_of = known[feature_to_row]  # per internal column (rows of numeric ones unused)
    return order, encodings, known_of


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
