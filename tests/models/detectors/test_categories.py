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


def test_values_that_are_not_text_are_looked_up_as_their_text():
    import pandas as pd

    index = vocabulary_index(["3", "food", "2.5"])
    codes = encode_values([3, np.str_("food"), 2.5, pd.NA, np.nan, None, "food", 4], index)
    np.testing.assert_array_equal(codes[[0, 1, 2, 6]], [0.0, 1.0, 2.0, 1.0])
    assert np.isnan(codes[[3, 4, 5, 7]]).all()
