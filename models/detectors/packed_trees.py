"""Tree ensembles packed into flat arrays and scored by a compiled traversal (numba).

sklearn's tree-ensemble predict paths carry a fixed cost per call (joblib dispatch in
IsolationForest, OpenMP start-up in HistGradientBoosting: milliseconds, far worse on a
busy machine), which dominates a micro-batch of a few events. Every node of every tree is
packed into flat arrays (what a fitted detector pickles), and `PackedForest.total` walks
them in compiled code: tree by tree, all rows of the batch one level at a time, without a
branch per node (children adjacent, the way chosen by a comparison), so the rows' walks
overlap in the processor and a tree's nodes stay in cache for the whole batch. Leaf values
are added in tree order from the given start, as sklearn adds them: the results equal
sklearn's (tested).

The walking layout (breadth-first, children adjacent) is derived from the packed arrays
when a forest is built or unpickled, never pickled, so bundles saved before it load as they
are. The compiled functions are cached on disk (numba's cache: next to this file, or the
user's cache directory when that is read-only; NUMBA_CACHE_DIR chooses another) and
compiled or loaded when a forest is built or unpickled, i.e. when a model loads, not on
its first batch.

Categorical splits (HistGradientBoosting with `categorical_features`) follow sklearn's
raw-data predictor: a node sends a category left when it is in the node's left bitset,
right when it is another category known at fit time, and the missing-value way otherwise
(NaN, negative, or a category the model never saw).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
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
        self._walk = _WalkLayout.of(self)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_walk", None)  # derived: rebuilt on load
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("categorical", None)  # forests pickled before categoricals
        self._walk = _WalkLayout.of(self)

    def total(self, X: np.ndarray, start: float = 0.0) -> np.ndarray:
        """Per row, `start` plus the values of the leaves it reaches, added in tree order."""
        X = np.asarray(X, dtype=np.float64)
        if self.float32_inputs:
            X = X.astype(np.float32).astype(np.float64)
        if self.categorical is not None:
            X = self.categorical.encode(X)
        out = np.full(len(X), start, dtype=np.float64)
        self._walk.add_leaves(np.ascontiguousarray(X), out)
        return out


def compile_ahead() -> None:
    """Compile the traversal (or load it from numba's cache) for forests with and without
    categorical splits, as loading a model would: the Docker image runs this at build
    time, so that its workers start with the cache filled."""
    stump = {
        "feature": np.array([0, 0, 0]),
        "threshold": np.array([0.5, 0.0, 0.0]),
        "left": np.array([1, 1, 2]),
        "right": np.array([2, 1, 2]),
        "missing_left": np.array([True, False, False]),
        "value": np.array([0.0, -1.0, 1.0]),
        "roots": np.array([0]),
        "depth": 1,
    }
    PackedForest(**stump)
    bits = np.zeros((3, BITSET_WORDS), dtype=np.uint32)
    PackedForest(
        **stump,
        categorical=CategoricalSplits(np.array([True, False, False]), bits, bits, {}),
    )


@dataclass
class _WalkLayout:
    """The nodes renumbered breadth-first per tree, so that a node's children are
    `child` and `child + 1`: one step is `child + went_right` with no branch. A leaf is
    its own child with threshold +inf, so steps past it keep it. Categorical nodes point
    into the bitset tables through `category_row` (-1 elsewhere; None: no categoricals)."""

    feature: np.ndarray  # int32
    threshold: np.ndarray  # float64
    child: np.ndarray  # int32
    missing_right: np.ndarray  # uint8: NaN goes right
    value: np.ndarray  # float64
    roots: np.ndarray  # int32
    depths: np.ndarray  # int32: levels of each tree
    category_row: np.ndarray | None
    left_bits: np.ndarray | None  # (n_categorical_nodes, 8) uint32
    known_bits: np.ndarray | None

    @classmethod
    def of(cls, forest: PackedForest) -> _WalkLayout:
        order, child, depths, roots = _breadth_first(
            forest.left.astype(np.int64),
            forest.right.astype(np.int64),
            forest.roots.astype(np.int64),
        )
        leaf = child == np.arange(len(child))
        category_row = left_bits = known_bits = None
        categorical = forest.categorical
        if categorical is not None:
            splits = categorical.is_categorical[order] & ~leaf
            category_row = np.full(len(order), -1, dtype=np.int32)
            category_row[splits] = np.arange(int(splits.sum()), dtype=np.int32)
            left_bits = np.ascontiguousarray(categorical.left_bits[order][splits], np.uint32)
            known_bits = np.ascontiguousarray(categorical.known_bits[order][splits], np.uint32)
        layout = cls(
            feature=np.where(leaf, 0, forest.feature[order]).astype(np.int32),
            threshold=np.where(leaf, np.inf, forest.threshold[order]),
            child=child.astype(np.int32),
            missing_right=(~forest.missing_left[order] & ~leaf).astype(np.uint8),
            value=forest.value[order].astype(np.float64),
            roots=roots.astype(np.int32),
            depths=depths.astype(np.int32),
            category_row=category_row,
            left_bits=left_bits,
            known_bits=known_bits,
        )
        n_features = int(forest.feature.max(initial=0)) + 1
        layout.add_leaves(np.zeros((1, n_features)), np.zeros(1))  # compile or load it now
        return layout

    def add_leaves(self, X: np.ndarray, out: np.ndarray) -> None:
        _add_leaves(
            X,
            self.feature,
            self.threshold,
            self.child,
            self.missing_right,
            self.value,
            self.roots,
            self.depths,
            self.category_row,
            self.left_bits,
            self.known_bits,
            out,
        )


@numba.njit(cache=True, nogil=True)
def _breadth_first(left, right, roots):  # pragma: no cover - compiled
    """Each tree's nodes breadth-first, siblings adjacent: the packed node at each new
    position, the new position of each node's left child (its own for a leaf), the levels
    of each tree and its root's new position."""
    n = left.shape[0]
    order = np.full(n, -1, dtype=np.int64)
    child = np.empty(n, dtype=np.int64)
    level = np.zeros(n, dtype=np.int64)
    depths = np.zeros(roots.shape[0], dtype=np.int64)
    new_roots = np.empty(roots.shape[0], dtype=np.int64)
    placed = 0
    for t in range(roots.shape[0]):
        new_roots[t] = placed
        order[placed] = roots[t]
        head = placed
        placed += 1
        while head < placed:
            node = order[head]
            if left[node] == node:  # a leaf
                child[head] = head
            else:
                child[head] = placed
                order[placed] = left[node]
                order[placed + 1] = right[node]
                level[placed] = level[placed + 1] = level[head] + 1
                placed += 2
            depths[t] = max(depths[t], level[head])
            head += 1
    if placed != n:
        raise ValueError("a packed forest has nodes that no root reaches")
    return order, child, depths, new_roots


@numba.njit(cache=True, nogil=True, inline="always")
def _category_goes_right(x, left_bits, known_bits, missing_right):  # pragma: no cover
    """sklearn's rule for a category code x (NaN, negative or unknown: the missing way)."""
    if not (x >= 0 and x <= MAX_CATEGORY):  # NaN too
        return missing_right
    code = np.uint32(x)  # truncated like sklearn's cast
    word, bit = code >> 5, code & 31
    if (left_bits[word] >> bit) & 1:
        return np.uint32(0)
    if (known_bits[word] >> bit) & 1:
        return np.uint32(1)
    return missing_right


@numba.njit(cache=True, nogil=True)
def _add_leaves(
    X,
    feature,
    threshold,
    child,
    missing_right,
    value,
    roots,
    depths,
    category_row,
    left_bits,
    known_bits,
    out,
):  # pragma: no cover - compiled
    """out[i] += the value of the leaf row i reaches, tree after tree (in tree order).

    Rows with a missing value are walked after the others, which then skip the NaN test
    (most batches have none: a third fewer instructions per step)."""
    n, n_features = X.shape
    rows = np.empty(n, dtype=np.int64)  # rows without NaN first, then the others
    complete, end = 0, n
    for i in range(n):
        has_nan = False
        for f in range(n_features):
            if X[i, f] != X[i, f]:
                has_nan = True
                break
        if has_nan:
            end -= 1
            rows[end] = i
        else:
            rows[complete] = i
            complete += 1
    if complete < n:
        X = X[rows]  # a copy in that order (rows' sums are put back at the end)
    sums = np.empty(n)
    for j in range(n):
        sums[j] = out[rows[j]] if complete < n else out[j]
    nodes = np.empty(n, dtype=np.uint32)
    for t in range(roots.shape[0]):
        root = np.uint32(roots[t])
        for j in range(n):
            nodes[j] = root
        for _ in range(depths[t]):
            for j in range(complete):
                node = nodes[j]
                x = X[j, np.uint32(feature[node])]
                right = np.uint32(x > threshold[node])
                if category_row is not None:
                    row = category_row[node]
                    if row >= 0:
                        right = _category_goes_right(
                            x, left_bits[row], known_bits[row], np.uint32(missing_right[node])
                        )
                nodes[j] = np.uint32(child[node]) + right
            for j in range(complete, n):
                node = nodes[j]
                x = X[j, np.uint32(feature[node])]
                missing = np.uint32(missing_right[node])
                right = np.uint32(x > threshold[node]) | (np.uint32(x != x) & missing)
                if category_row is not None:
                    row = category_row[node]
                    if row >= 0:
                        right = _category_goes_right(x, left_bits[row], known_bits[row], missing)
                nodes[j] = np.uint32(child[node]) + right
        for j in range(n):
            sums[j] += value[nodes[j]]
    for j in range(n):
        out[rows[j]] = sums[j]


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
