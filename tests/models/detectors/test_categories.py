"""Vocabularies and codes of categorical features."""

from __future__ import annotations

import numpy as np

from models.detectors.categories import build_vocabulary, encode_values, vocabulary_index


def test_vocabulary_most_frequent_first_and_capped():
    values = ["b", "a", "b", None, "c", "b", "a", float("nan")]
    assert build_vocabulary(values) == ["b", "a", "c"]
    assert build_vocabulary(values, limit=2) == ["b", "a"]


def test_unseen_and_missing_values_are_nan():
    index = vocabulary_index(["food", "travel"])
    codes = encode_values(["travel", "food", "gas", None, float("nan")], index)
    np.testing.assert_array_equal(codes[:2], [1.0, 0.0])
    assert np.isnan(codes[2:]).all()
