"""Categorical features as integer codes: a vocabulary per feature, built from training data.

A categorical feature's value is text (None when missing). The model sees its code: the
value's position in the vocabulary, a float so it fits the feature matrix; a value not
seen in training, None or NaN is NaN, which the gradient-boosted trees treat as missing.
Only the trees read codes (models/detectors/gradient_boosting.py); the other detectors
get the numeric features only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

# sklearn's histogram trees accept at most max_bins (255) categories per feature; rarer
# values beyond that are coded as missing.
MAX_CATEGORIES = 255


def is_missing(value: object) -> bool:
    """None, NaN or pandas' NA (a scalar)."""
    missing = pd.isna(value)
    return bool(missing) if isinstance(missing, bool | np.bool_) else False


def build_vocabulary(values: Iterable[object], limit: int = MAX_CATEGORIES) -> list[str]:
    """The `limit` most frequent values (as text), most frequent first, ties by value."""
    counts = Counter(str(v) for v in values if not is_missing(v))
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [value for value, _ in ranked[:limit]]


def vocabulary_index(vocabulary: list[str]) -> dict[str, int]:
    return {value: code for code, value in enumerate(vocabulary)}


def encode_values(values: Iterable[object], index: Mapping[str, int]) -> np.ndarray:
    """Codes of `values` (NaN for missing or unseen ones)."""
    nan = np.nan
    return np.array(
        [
            # Text (the usual value) is looked up as it is: never missing.
            index.get(v, nan) if v.__class__ is str else _code(v, index)
            for v in values
        ],
        dtype=np.float64,
    )


def _code(value: object, index: Mapping[str, int]) -> float:
    return np.nan if is_missing(value) else index.get(str(value), np.nan)
