import importlib.util
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aegis_app.harness import simulator
from aegis_app.harness.simulator import COLUMNS, DAY, RADIUS, generate

# Keyed streams (seed other than the Handbook's) on a sparse grid.
SMALL = {"customers": 200, "terminals": 400, "days": 40}
# The Handbook's seeds on a smaller population: the scenario mechanics are checked here.
HANDBOOK_SMALL = {"customers": 300, "terminals": 600, "days": 60}
# The fraud rate depends on how many customers and terminals share the 100 x 100 grid (two
# terminals and three cards are compromised per day whatever the size), so the test of another
# seed keeps the default density and only shortens the period.
MEDIUM = {"customers": 5000, "terminals": 10000, "days": 100}
# Share of Normal(43,200, 20,000) times of day with 0 < t < 86,400 (the rest are dropped).
KEPT_TIME_SHARE = 0.96924

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def small() -> pd.DataFrame:
    return generate(**SMALL, seed=3)


@pytest.fixture(scope="module")
def handbook_genuine() -> pd.DataFrame:
    return simulator.genuine_transactions(**HANDBOOK_SMALL)


@pytest.fixture(scope="module")
def handbook_small(handbook_genuine) -> pd.DataFrame:
    return simulator.add_frauds(
        handbook_genuine, HANDBOOK_SMALL["customers"], HANDBOOK_SMALL["terminals"]
    )


@pytest.fixture(scope="module")
def published() -> pd.DataFrame:
    """The defaults: the Handbook's data set (a few seconds)."""
    return generate()


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_defaults_reproduce_the_published_data_set(published):
    check = _script("simulator_check")
    measured = check.figures(published)
    for name in (
        "transactions",
        "frauds",
        "customers_with_transactions",
        "frauds_s1",
        "frauds_s2",
        "frauds_s3",
    ):
        assert measured[name] == check.PUBLISHED[name], name
    # simulator.md gives the per-day figures rounded ("about").
    for name in ("per_day_transactions", "per_day_frauds", "per_day_compromised_cards"):
        assert measured[name] == pytest.approx(check.PUBLISHED[name], rel=0.01), name
    assert published["TX_TIME_DAYS"].max() == 182
    assert published["TERMINAL_ID"].nunique() == 10_000


def test_same_seed_same_frame_and_other_seed_differs(small):
    pd.testing.assert_frame_equal(generate(**SMALL, seed=3), small)
    assert not generate(**SMALL, seed=4).equals(small)
    assert not generate(**SMALL, seed=0).equals(small)


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
    assert (distance < RADIUS).all()
    # A customer with no terminal in reach never transacts (sparse grid: some exist here).
    gaps = np.hypot(
        customers["x_customer_id"].to_numpy()[:, None] - terminals["x_terminal_id"].to_numpy(),
        customers["y_customer_id"].to_numpy()[:, None] - terminals["y_terminal_id"].to_numpy(),
    )
    stranded = customers["CUSTOMER_ID"][(gaps >= RADIUS).all(axis=1)]
    assert len(stranded) > 0
    assert not small["CUSTOMER_ID"].isin(stranded).any()
    # Every reachable terminal is found, none beyond.
    reachable = simulator.reachable_terminals(customers, terminals)
    for customer_id in (0, 57, 199):
        assert (reachable[customer_id] == np.flatnonzero(gaps[customer_id] < RADIUS)).all()


def test_customer_profiles_follow_the_spec():
    profiles = simulator.customer_profiles(2000, seed=5)
    assert profiles[["x_customer_id", "y_customer_id"]].stack().between(0, 100).all()
    assert profiles["mean_amount"].between(5, 100).all()
    assert np.allclose(profiles["std_amount"], profiles["mean_amount"] / 2)
    assert profiles["mean_nb_tx_per_day"].between(0, 4).all()


def test_handbook_profiles_are_drawn_customer_after_customer_with_seeds_0_and_1():
    rng = np.random.RandomState(0)
    expected = [
        (rng.uniform(0, 100), rng.uniform(0, 100), rng.uniform(5, 100), rng.uniform(0, 4))
        for _ in range(50)
    ]
    profiles = simulator.customer_profiles(50)
    columns = ["x_customer_id", "y_customer_id", "mean_amount", "mean_nb_tx_per_day"]
    assert profiles[columns].to_numpy().tolist() == [list(row) for row in expected]
    rng = np.random.RandomState(1)
    expected = [[rng.uniform(0, 100), rng.uniform(0, 100)] for _ in range(50)]
    terminals = simulator.terminal_profiles(50)
    assert terminals[["x_terminal_id", "y_terminal_id"]].to_numpy().tolist() == expected


def _spending_by_scalar_calls(customer_id: int, mean_amount: float, mean_per_day: float, days):
    """The described process written with RandomState's scalar calls (the Handbook's draws)."""
    rng = np.random.RandomState(customer_id)
    seconds, amounts, redraws = [], [], 0
    for day in range(days):
        for _ in range(rng.poisson(mean_per_day)):
            time_of_day = int(rng.normal(DAY / 2, 20_000))
            if 0 < time_of_day < DAY:
                amount = rng.normal(mean_amount, mean_amount / 2)
                if amount < 0:
                    amount = rng.uniform(0, mean_amount * 2)
                    redraws += 1
                seconds.append(time_of_day + day * DAY)
                amounts.append(amount)
    return seconds, amounts, redraws


# (customer id, mean amount, mean transactions per day): low amounts exercise the redraw of
# negative amounts, 9.5 the Poisson draw near numpy's method limit (10), 0 a customer who never
# draws.
SPENDERS = [(0, 37.5, 2.2), (17, 5.3, 3.9), (4242, 99.0, 0.3), (9, 8.0, 0.0), (3, 50.0, 9.5)]


@pytest.mark.parametrize(("slack", "redrawn"), [(1.15, False), (0.05, True)])
def test_spending_draws_equal_randomstate_scalar_calls(slack, redrawn, monkeypatch):
    """All customers drawn together equal each customer's own scalar calls; with a tiny slack
    the customers overrun their blocks of uniforms and are redrawn with larger ones."""
    days = 120
    ids, means, rates = (np.array(column) for column in zip(*SPENDERS, strict=True))
    calls = []
    draw = simulator.spending_draws

    def counted(*args, **kwargs):
        calls.append(args[1].tolist())
        return draw(*args, **kwargs)

    monkeypatch.setattr(simulator, "spending_draws", counted)
    customer, seconds, amounts = simulator.spending_draws(
        simulator.RandomStreams(simulator.HANDBOOK_SEED), ids, means, rates, days, slack=slack
    )
    assert (len(calls) > 1) == redrawn, calls
    assert (np.diff(customer) >= 0).all()  # customer after customer
    redraws = 0
    for customer_id, mean_amount, mean_per_day in SPENDERS:
        expected = _spending_by_scalar_calls(customer_id, mean_amount, mean_per_day, days)
        mine = customer == customer_id
        assert seconds[mine].tolist() == expected[0], customer_id
        assert amounts[mine].tolist() == expected[1], customer_id
        redraws += expected[2]
    assert redraws > 0  # the negative-amount branch was exercised
    assert not (customer == 9).any()


def test_spending_draws_rejects_rates_outside_numpys_poisson_method():
    streams = simulator.RandomStreams(simulator.HANDBOOK_SEED)
    with pytest.raises(ValueError, match=r"mean transactions per day must be in \[0, 10\)"):
        simulator.spending_draws(streams, np.array([1]), np.array([10.0]), np.array([10.0]), 5)


@pytest.mark.parametrize("size", [1, 2, 3, 78, 129, 1000])
def test_terminal_choices_equal_python_random_choice(size):
    options = np.arange(size, dtype=np.int64) * 7 + 1
    streams = simulator.RandomStreams(simulator.HANDBOOK_SEED)
    chosen = simulator.python_choices(streams.python_words(0, 42), options, 500)
    rng = random.Random(42)  # the Handbook seeds Python's generator with the customer id
    assert chosen.tolist() == [rng.choice(options.tolist()) for _ in range(500)]
    # With another seed the words are still those of the stream's random.Random.
    streams = simulator.RandomStreams(8)
    chosen = simulator.python_choices(streams.python_words(3, 42), options, 100)
    rng = streams.python(3, 42)
    assert chosen.tolist() == [rng.choice(options.tolist()) for _ in range(100)]
    assert simulator.python_choices(streams.python_words(3, 42), options, 0).size == 0


def test_transactions_per_customer_and_day_follow_the_profile(handbook_genuine):
    days = HANDBOOK_SMALL["days"]
    profiles = simulator.customer_profiles(HANDBOOK_SMALL["customers"])
    active = profiles[profiles["CUSTOMER_ID"].isin(handbook_genuine["CUSTOMER_ID"])]
    expected = active["mean_nb_tx_per_day"].sum() * days * KEPT_TIME_SHARE
    assert len(handbook_genuine) == pytest.approx(expected, rel=0.02)
    per_customer = handbook_genuine.groupby("CUSTOMER_ID").size()
    rate = active.set_index("CUSTOMER_ID")["mean_nb_tx_per_day"].reindex(per_customer.index)
    assert np.corrcoef(per_customer, rate)[0, 1] > 0.95
    # Times of day are kept only strictly inside the day: never at midnight exactly.
    assert (handbook_genuine["TX_TIME_SECONDS"] % DAY > 0).all()
    # Genuine amounts: Normal(mean, mean / 2), negatives (Z < -2, 2.3 %) redrawn uniformly on
    # [0, 2 x mean], i.e. Z uniform on [-2, 2]: Z's mean is then phi(2) = 0.054 and its standard
    # deviation 0.947 (not 0 and 1).
    mean = handbook_genuine["CUSTOMER_ID"].map(profiles["mean_amount"])
    standardised = (handbook_genuine["TX_AMOUNT"] - mean) / (mean / 2)
    assert standardised.mean() == pytest.approx(0.054, abs=0.015)
    assert standardised.std() == pytest.approx(0.947, abs=0.015)
    assert standardised.min() >= -2
    cents = handbook_genuine["TX_AMOUNT"] * 100
    assert (cents.round() == cents.round(6)).all()


def test_scenario_1_is_every_genuine_amount_above_220(handbook_genuine, handbook_small):
    above = handbook_genuine["TX_AMOUNT"] > 220
    assert above.any()
    # Above 220 is fraud: scenario 1 unless a later scenario took the row.
    assert (handbook_small.loc[above, "TX_FRAUD"] == 1).all()
    s1 = handbook_small["TX_FRAUD_SCENARIO"] == 1
    assert (handbook_genuine.loc[s1, "TX_AMOUNT"] > 220).all()
    assert (handbook_small.loc[handbook_small["TX_FRAUD"] == 0, "TX_AMOUNT"] <= 220).all()
    # S1 runs before S3, so an amount that S3's x5 pushes above 220 stays scenario 3.
    pushed = (handbook_small["TX_AMOUNT"] > 220) & (handbook_genuine["TX_AMOUNT"] <= 220)
    assert pushed.sum() > 20
    assert (handbook_small.loc[pushed, "TX_FRAUD_SCENARIO"] == 3).all()


def test_boundaries_radius_5_and_amount_220_are_excluded():
    customers = pd.DataFrame({"x_customer_id": [10.0], "y_customer_id": [10.0]})
    terminals = pd.DataFrame({"x_terminal_id": [15.0, 14.999, 10.0], "y_terminal_id": [10.0] * 3})
    assert simulator.reachable_terminals(customers, terminals)[0].tolist() == [1, 2]
    # Two genuine transactions on the last day (no scenario draws): 220.00 and 220.01.
    rows = pd.DataFrame(
        {
            "TRANSACTION_ID": [0, 1],
            "TX_DATETIME": pd.to_datetime(["2018-04-01 10:00", "2018-04-01 11:00"]),
            "CUSTOMER_ID": [0, 0],
            "TERMINAL_ID": [0, 0],
            "TX_AMOUNT": [220.0, 220.01],
            "TX_TIME_SECONDS": [36_000, 39_600],
            "TX_TIME_DAYS": [0, 0],
            "TX_FRAUD": [0, 0],
            "TX_FRAUD_SCENARIO": [0, 0],
        }
    )
    frauds = simulator.add_frauds(rows, customers=1, terminals=1)
    assert frauds["TX_FRAUD_SCENARIO"].tolist() == [0, 1]


def _handbook_draw_days(frame: pd.DataFrame) -> range:
    return range(int(frame["TX_TIME_DAYS"].max()))  # each day but the last


def test_scenario_2_marks_all_transactions_of_a_drawn_terminal_for_28_days(handbook_small):
    terminals = HANDBOOK_SMALL["terminals"]
    terminal, day = handbook_small["TERMINAL_ID"], handbook_small["TX_TIME_DAYS"]
    covered = pd.Series(False, index=handbook_small.index)
    for d in _handbook_draw_days(handbook_small):
        drawn = np.random.RandomState(d).choice(terminals, 2, replace=False)
        covered |= terminal.isin(drawn) & day.between(d, d + 27)
    scenario = handbook_small["TX_FRAUD_SCENARIO"]
    assert covered.sum() > 500
    assert (handbook_small.loc[covered, "TX_FRAUD"] == 1).all()
    assert scenario[covered].isin([2, 3]).all()  # S3 may take a row after S2
    assert (scenario == 2).equals(covered & (scenario != 3))


def test_scenario_3_multiplies_a_third_of_a_drawn_cards_14_days_by_5(
    handbook_genuine, handbook_small
):
    customers = HANDBOOK_SMALL["customers"]
    customer, day = handbook_genuine["CUSTOMER_ID"], handbook_genuine["TX_TIME_DAYS"]
    amount = handbook_genuine["TX_AMOUNT"].to_numpy(copy=True)
    picked = np.zeros(len(amount), dtype=bool)
    for d in _handbook_draw_days(handbook_genuine):
        cards = np.random.RandomState(d).choice(customers, 3, replace=False)
        window = handbook_genuine.index[customer.isin(cards) & day.between(d, d + 13)]
        chosen = random.Random(d).sample(list(window), len(window) // 3)
        assert len(chosen) == len(window) // 3
        amount[chosen] = np.round(amount[chosen] * 5, 2)
        picked[chosen] = True
    assert picked.sum() > 200
    assert ((handbook_small["TX_FRAUD_SCENARIO"] == 3).to_numpy() == picked).all()
    assert (handbook_small["TX_AMOUNT"].to_numpy() == amount).all()
    # Everything else keeps its genuine amount.
    unchanged = ~picked
    assert (
        handbook_small["TX_AMOUNT"].to_numpy()[unchanged]
        == handbook_genuine["TX_AMOUNT"].to_numpy()[unchanged]
    ).all()


def test_another_seed_gives_the_same_process(published):
    frame = generate(**MEDIUM, seed=7)
    assert not frame["TX_AMOUNT"].head(1000).equals(published["TX_AMOUNT"].head(1000))
    profiles = simulator.customer_profiles(MEDIUM["customers"], seed=7)
    expected = profiles["mean_nb_tx_per_day"].sum() * MEDIUM["days"] * KEPT_TIME_SHARE
    assert len(frame) == pytest.approx(expected, rel=0.01)

    # Scenario counts per day once the 28-day windows are full, against the published data's.
    def frauds_per_day(data: pd.DataFrame) -> pd.Series:
        steady = data[data["TX_TIME_DAYS"].between(30, MEDIUM["days"] - 1)]
        return steady.groupby("TX_FRAUD_SCENARIO").size() / (MEDIUM["days"] - 30)

    ours, theirs = frauds_per_day(frame), frauds_per_day(published)
    assert ours[2] == pytest.approx(theirs[2], rel=0.25)
    assert ours[3] == pytest.approx(theirs[3], rel=0.25)
    assert 0.007 <= frame["TX_FRAUD"].mean() <= 0.010


def test_empty_inputs_give_an_empty_frame_with_the_schema():
    for args in ({"customers": 0}, {"terminals": 0}, {"days": 0}):
        frame = generate(**{**SMALL, **args})
        assert frame.empty
        assert tuple(frame.columns) == COLUMNS


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"customers": -1}, "customers must be 0 or more"),
        ({"days": -5}, "days must be 0 or more"),
        ({"seed": -1}, "seed must be between 0 and"),
        ({"seed": 2**32}, "seed must be between 0 and"),
    ],
)
def test_bad_arguments_are_named(arguments, message):
    with pytest.raises(ValueError, match=message):
        generate(**{**SMALL, **arguments})


def test_add_frauds_names_ids_outside_the_population(small):
    with pytest.raises(ValueError, match=r"TERMINAL_ID must lie in \[0, 10\)"):
        simulator.add_frauds(small, SMALL["customers"], 10)
    with pytest.raises(ValueError, match="sorted by TX_TIME_SECONDS"):
        simulator.add_frauds(small.iloc[::-1], SMALL["customers"], SMALL["terminals"])


def test_progress_bar_goes_to_stderr(capsys):
    generate(customers=10, terminals=20, days=2, progress=True)
    captured = capsys.readouterr()
    assert "days" in captured.err
    assert captured.out == ""
