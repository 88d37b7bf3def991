"""Scenario 4 (spending bursts) laid over simulator data: deterministic, from its day on,
bursts of purchases at the cardholder's usual amounts, the original transactions untouched."""

from __future__ import annotations

import pandas as pd
import pytest

from aegis_app.harness import simulator
from aegis_app.harness.scenarios import BURST_SIZE, SPENDING_BURST, add_spending_bursts


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return simulator.generate(customers=120, terminals=240, days=12, seed=3)


def test_bursts_start_on_their_day_at_usual_amounts(data):
    out = add_spending_bursts(data, from_day=8, cards_per_day=2, seed=3)
    bursts = out[out["TX_FRAUD_SCENARIO"] == SPENDING_BURST]
    assert len(out) == len(data) + len(bursts)
    assert bursts["TX_TIME_DAYS"].min() >= 8 and set(bursts["TX_FRAUD"]) == {1}
    # amounts like the cardholder's own: nothing for an amount-based model to see
    usual = data[data["TX_FRAUD"] == 0].groupby("CUSTOMER_ID")["TX_AMOUNT"].agg(["mean", "std"])
    ratio = bursts["TX_AMOUNT"].to_numpy() / usual.loc[bursts["CUSTOMER_ID"], "mean"].to_numpy()
    assert (bursts["TX_AMOUNT"] >= 0).all() and 0.5 < float(ratio.mean()) < 1.5
    # minutes apart: a burst fits in a few hours of one day
    spans = bursts.groupby(["TX_TIME_DAYS", "CUSTOMER_ID"])["TX_TIME_SECONDS"].agg(["min", "max"])
    assert ((spans["max"] - spans["min"]) < 4 * 3600).all()
    per_card_day = bursts.groupby(["TX_TIME_DAYS", "CUSTOMER_ID"]).size()
    assert len(per_card_day) == 4 * 2  # days 8..11, two cards each
    assert per_card_day.between(BURST_SIZE[0], BURST_SIZE[1] - 1).all()
    # in time order, numbered in that order, like the simulator's own output
    assert out["TX_TIME_SECONDS"].is_monotonic_increasing
    assert out["TRANSACTION_ID"].tolist() == list(range(len(out)))
    # the generated transactions are all still there, unchanged
    original = out[out["TX_FRAUD_SCENARIO"] != SPENDING_BURST].drop(columns="TRANSACTION_ID")
    pd.testing.assert_frame_equal(
        original.reset_index(drop=True), data.drop(columns="TRANSACTION_ID")
    )


def test_same_seed_same_bursts(data):
    a = add_spending_bursts(data, from_day=10, seed=1)
    b = add_spending_bursts(data, from_day=10, seed=1)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(add_spending_bursts(data, from_day=10, seed=2))
    assert add_spending_bursts(data, from_day=99).equals(data[list(data.columns)])
