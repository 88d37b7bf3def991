import numpy as np
import pandas as pd
import pytest

from aegis_app.harness import simulator
from aegis_app.harness.simulator import COLUMNS, DAY, RADIUS, generate

SMALL = {"customers": 200, "terminals": 400, "days": 40}
# The fraud rate depends on how many customers and terminals share the 100 x 100 grid (two
# terminals and three cards are compromised per day whatever the size), so the rate test keeps
# the default density and only shortens the period.
MEDIUM = {"customers": 5000, "terminals": 10000, "days": 100}


@pytest.fixture(scope="module")
def small() -> pd.DataFrame:
    return generate(**SMALL, seed=3)


@pytest.fixture(scope="module")
def medium() -> pd.DataFrame:
    return generate(**MEDIUM, seed=0)


def test_same_seed_same_frame_and_other_seed_differs(small):
    pd.testing.assert_frame_equal(generate(**SMALL, seed=3), small)
    assert not generate(**SMALL, seed=4).equals(small)


def test_schema_and_dtypes(small):
    assert tuple(small.columns) == COLUMNS
    assert small["TX_DATETIME"].dtype == "datetime64[us]"
    for column in COLUMNS:
        if column not in ("TX_DATETIME", "TX_AMOUNT"):
            assert small[column].dtype == np.int64, column
    assert small["TX_AMOUNT"].dtype == np.float64
    seconds = small["TX_TIME_SECONDS"]
    start = pd.Timestamp("2018-04-01")
    assert (small["TX_DATETIME"] == start + pd.to_timedelta(seconds, "s")).all()
    assert (small["TX_TIME_DAYS"] == seconds // DAY).all()
    assert seconds.between(0, SMALL["days"] * DAY - 1).all()
    cents = small["TX_AMOUNT"] * 100
    assert np.allclose(cents, cents.round(), atol=1e-6)
    assert (small["TX_AMOUNT"] >= 0).all()
    assert (small["TX_FRAUD"] == (small["TX_FRAUD_SCENARIO"] > 0)).all()
    assert set(small["TX_FRAUD_SCENARIO"].unique()) <= {0, 1, 2, 3}


def test_start_date_moves_the_clock():
    frame = generate(customers=20, terminals=40, days=3, seed=1, start_date="2020-02-28")
    expected = pd.Timestamp("2020-02-28") + pd.to_timedelta(frame["TX_TIME_SECONDS"], "s")
    assert (frame["TX_DATETIME"] == expected).all()


def test_sorted_by_time_and_numbered(small):
    assert (small["TRANSACTION_ID"].to_numpy() == np.arange(len(small))).all()
    assert small["TX_TIME_SECONDS"].is_monotonic_increasing


def test_customers_only_use_terminals_within_radius(small):
    customers = simulator.customer_profiles(SMALL["customers"], seed=3)
    terminals = simulator.terminal_profiles(SMALL["terminals"], seed=3)
    joined = small.merge(customers, on="CUSTOMER_ID").merge(terminals, on="TERMINAL_ID")
    assert len(joined) == len(small)
    distance = np.hypot(
        joined["x_customer_id"] - joined["x_terminal_id"],
        joined["y_customer_id"] - joined["y_terminal_id"],
    )
    assert (distance <= RADIUS).all()
    # A customer with no terminal in reach never transacts (sparse grid: some exist here).
    gaps = np.hypot(
        customers["x_customer_id"].to_numpy()[:, None] - terminals["x_terminal_id"].to_numpy(),
        customers["y_customer_id"].to_numpy()[:, None] - terminals["y_terminal_id"].to_numpy(),
    )
    stranded = customers["CUSTOMER_ID"][(gaps > RADIUS).all(axis=1)]
    assert len(stranded) > 0
    assert not small["CUSTOMER_ID"].isin(stranded).any()


def test_customer_profiles_follow_the_spec():
    profiles = simulator.customer_profiles(2000, seed=5)
    assert profiles[["x_customer_id", "y_customer_id"]].stack().between(0, 100).all()
    assert profiles["mean_amount"].between(5, 100).all()
    assert np.allclose(profiles["std_amount"], profiles["mean_amount"] / 2)
    assert profiles["mean_nb_tx_per_day"].between(0, 4).all()


def test_scenario_1_is_every_amount_above_220(medium):
    above = medium["TX_AMOUNT"] > 220
    assert (medium.loc[above, "TX_FRAUD"] == 1).all()
    assert (medium.loc[medium["TX_FRAUD_SCENARIO"] == 1, "TX_AMOUNT"] > 220).all()
    assert (medium.loc[medium["TX_FRAUD"] == 0, "TX_AMOUNT"] <= 220).all()


def test_compromised_terminals_and_cards_are_few(medium):
    days = MEDIUM["days"]
    s2 = medium[medium["TX_FRAUD_SCENARIO"] == 2]
    s3 = medium[medium["TX_FRAUD_SCENARIO"] == 3]
    assert 0 < s2["TERMINAL_ID"].nunique() <= 2 * days
    assert 0 < s3["CUSTOMER_ID"].nunique() <= 3 * days
    # Scenario 3 multiplies the amount by 5: compare with the same cards' genuine spending.
    genuine = medium[medium["TX_FRAUD"] == 0].groupby("CUSTOMER_ID")["TX_AMOUNT"].mean()
    ratio = s3["TX_AMOUNT"] / s3["CUSTOMER_ID"].map(genuine)
    assert 3 < ratio.median() < 8


def test_fraud_rate_and_scenario_mix_are_plausible(medium):
    rate = medium["TX_FRAUD"].mean()
    assert 0.006 <= rate <= 0.011
    counts = medium["TX_FRAUD_SCENARIO"].value_counts()
    frauds = medium["TX_FRAUD"].sum()
    # Handbook (183 days): S1 6.6 %, S2 61.8 %, S3 31.5 % of frauds.
    assert 0.02 < counts[1] / frauds < 0.15
    assert 0.45 < counts[2] / frauds < 0.75
    assert 0.2 < counts[3] / frauds < 0.45
    # About 2 transactions per customer and day, minus times of day that fall outside the day.
    per_day = len(medium) / MEDIUM["days"] / MEDIUM["customers"]
    assert 1.8 < per_day < 2.1


def test_empty_inputs_give_an_empty_frame_with_the_schema():
    for args in ({"customers": 0}, {"terminals": 0}, {"days": 0}):
        frame = generate(**{**SMALL, **args})
        assert frame.empty
        assert tuple(frame.columns) == COLUMNS


def test_progress_bar_goes_to_stderr(capsys):
    generate(customers=10, terminals=20, days=2, progress=True)
    captured = capsys.readouterr()
    assert "customers" in captured.err
    assert captured.out == ""
