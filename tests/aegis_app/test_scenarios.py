"""Scenario 4 (card testing) laid over simulator data: deterministic, from its day on,
bursts of small purchases, the original transactions untouched."""

from __future__ import annotations

import pandas as pd
import pytest

from aegis_app import simulator
from aegis_app.scenarios import AMOUNT_RANGE, BURST_SIZE, CARD_TESTING, add_card_testing


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return simulator.generate(customers=120, terminals=240, days=12, seed=3)


def test_bursts_start_on_their_day_and_look_like_card_testing(data):
    out = add_card_testing(data, from_day=8, cards_per_day=2, seed=3)
    bursts = out[out["TX_FRAUD_SCENARIO"] == CARD_TESTING]
    assert len(out) == len(data) + len(bursts)
    assert bursts["TX_TIME_DAYS"].min() >= 8 and set(bursts["TX_FRAUD"]) == {1}
    assert bursts["TX_AMOUNT"].between(*AMOUNT_RANGE).all()
    per_card_day = bursts.groupby(["TX_TIME_DAYS", "CUSTOMER_ID"]).size()
    assert len(per_card_day) == 4 * 2  # days 8..11, two cards each
    assert per_card_day.between(BURST_SIZE[0], BURST_SIZE[1] - 1).all()
    # in time order, numbered in that order, like the simulator's own output
    assert out["TX_TIME_SECONDS"].is_monotonic_increasing
    assert out["TRANSACTION_ID"].tolist() == list(range(len(out)))
    # the generated transactions are all still there, unchanged
    original = out[out["TX_FRAUD_SCENARIO"] != CARD_TESTING].drop(columns="TRANSACTION_ID")
    pd.testing.assert_frame_equal(
        original.reset_index(drop=True), data.drop(columns="TRANSACTION_ID")
    )


def test_same_seed_same_bursts(data):
    a = add_card_testing(data, from_day=10, seed=1)
    b = add_card_testing(data, from_day=10, seed=1)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(add_card_testing(data, from_day=10, seed=2))
    assert add_card_testing(data, from_day=99).equals(data[list(data.columns)])
