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


def test_reductions_agree_one_by_one_vectorised_and_in_chunks(monkeypatch):
    rng = np.random.default_rng(0)
    values = rng.normal(size=500)
    starts = rng.integers(0, 500, size=60)
    ends = np.minimum(starts + rng.integers(0, 80, size=60), 500)
    want_sum = np.array([values[s:e].sum() for s, e in zip(starts, ends)])
    want_max = np.array([values[s:e].max() if e > s else -1.0 for s, e in zip(starts, ends)])
    squares = lambda element, owner: values[element] ** 2  # noqa: E731
    want_squares = np.array([(values[s:e] ** 2).sum() for s, e in zip(starts, ends)])
    for size in (1, 7, 60):  # the one-by-one path below FEW, vectorised above it
        s, e = starts[:size], ends[:size]
        np.testing.assert_allclose(
            windows.segment_reduce(np.add, values, s, e, 0.0), want_sum[:size], rtol=1e-12
        )
        np.testing.assert_array_equal(
            windows.segment_reduce(np.fmax, values, s, e, -1.0), want_max[:size]
        )
        np.testing.assert_allclose(
            windows.segment_sum(s, e, squares), want_squares[:size], rtol=1e-12
        )
    monkeypatch.setattr(windows, "CHUNK", 50)
    np.testing.assert_allclose(windows.segment_sum(starts, ends, squares), want_squares, rtol=1e-12)


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
