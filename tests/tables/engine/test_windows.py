"""The window arithmetic: its reductions agree whatever the batch size or chunking, keys
never share a window, and spreads do not suffer from long histories."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aegis_app.core.config import parse
from aegis_app.core.timerules import DAY
from tables.engine import compute_features, windows
from tests.tables.engine.cases import SOURCE, START


def test_window_sums_are_numpys_sums_bit_for_bit():
    """The kernel sums in numpy's pairwise order: the value of np.add.reduce over the
    window, signed zeros included, below, at and above its blocks of 8 and 128."""
    rng = np.random.default_rng(0)
    for n in [*range(0, 300), 1000, 1031, 4096, 100_000]:
        values = rng.standard_normal(n) * 10.0 ** rng.uniform(-3, 8, n)
        if n % 5 == 0 and n:
            values[rng.integers(0, n, 3)] = -0.0
        got, want = windows._pairwise_sum(values, n), np.add.reduce(values)
        assert got == want and np.signbit(got) == np.signbit(want), n


def config(features: list[dict]):
    return parse(
        {
            "source": SOURCE,
            "entities": {"card": "card", "merchant": "merchant"},
            "features": features,
        }
    )


def rows(cards: list[str], times: list[int], amounts: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "transaction_id": [f"t{i}" for i in range(len(cards))],
            "card": cards,
            "merchant": "m",
            "amount": amounts,
            "ts": times,
            "label": None,
        }
    )


def test_keys_never_share_a_window():
    features = config(
        [
            {"kind": "count", "entity": "card", "window_days": 30},
            {"kind": "sum", "entity": "card", "field": "amount", "window_days": 30},
            {"kind": "count", "entity": "card", "window_days": 2, "delay_days": 1, "name": "late"},
        ]
    )
    # Two cards interleaved in time; the second card's first event precedes all of the
    # first card's, the window of each reaches far before its own first event.
    df = rows(
        ["b", "a", "b", "a", "a"],
        [START - DAY, START, START + 1, START + 2, START + DAY + 3],
        [1.0, 10.0, 2.0, 20.0, 40.0],
    )
    got = compute_features(df, features)
    assert got["card_count_30d"].tolist() == [1.0, 1.0, 2.0, 2.0, 3.0]
    assert got["card_amount_sum_30d"].tolist() == [1.0, 10.0, 3.0, 30.0, 70.0]
    assert got["late"].tolist() == [0.0, 0.0, 1.0, 0.0, 2.0]


def test_same_second_transactions_count_in_arrival_order():
    features = config(
        [
            {"kind": "count", "entity": "card", "window_days": 1},
            {"kind": "since_previous", "entity": "card", "window_days": 1},
        ]
    )
    got = compute_features(rows(["a"] * 3, [START] * 3, [1.0, 2.0, 3.0]), features)
    assert got["card_count_1d"].tolist() == [1.0, 2.0, 3.0]
    assert got["card_since_previous_1d"].tolist() == [DAY, 0.0, 0.0]


def test_a_window_of_equal_values_has_no_spread_after_a_long_varied_history():
    features = config(
        [
            {"kind": "std", "entity": "card", "field": "amount", "window_days": 1},
            {"kind": "zscore", "entity": "card", "field": "amount", "window_days": 1},
        ]
    )
    rng = np.random.default_rng(1)
    n = 20_000
    times = list(START + np.arange(n) * 2 * DAY) + [START + 2 * n * DAY + i for i in range(5)]
    amounts = list(rng.uniform(0, 1e6, size=n)) + [12.34] * 4 + [50.0]
    got = compute_features(rows(["a"] * (n + 5), times, amounts), features)
    assert got["card_amount_std_1d"].iloc[n + 3] < 1e-12
    # Four equal previous amounts: (50 - 12.34) / (0 + 1), not divided by a rounding sd.
    assert got["card_amount_zscore_1d"].iloc[n + 4] == pytest.approx(50.0 - 12.34, rel=1e-12)
