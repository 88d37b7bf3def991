"""Tests of models/evaluation.py on tiny hand-built frames whose answers are known."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from models.lifecycle import evaluation as ev

BASE = pd.Timestamp("2018-07-25")  # the book's train start
SPLIT = ev.Split(BASE)


def frame(rows: list[tuple[float, int, int]], start: pd.Timestamp = BASE) -> pd.DataFrame:
    """Simulator-schema frame from (days since `start` as a float, card, fraud) rows.

    TX_TIME_DAYS is deliberately wrong (counted from 2018-04-01 + 1000 days) to prove that
    the library uses TX_DATETIME only.
    """
    offsets = pd.to_timedelta([r[0] for r in rows], unit="D")
    dt = (start + offsets).astype("datetime64[ns]")
    n = len(rows)
    return pd.DataFrame(
        {
            "TRANSACTION_ID": np.arange(n),
            "TX_DATETIME": dt,
            "CUSTOMER_ID": [r[1] for r in rows],
            "TERMINAL_ID": np.zeros(n, dtype=int),
            "TX_AMOUNT": np.full(n, 10.0),
            "TX_TIME_SECONDS": np.zeros(n, dtype=int),
            "TX_TIME_DAYS": np.full(n, 1000),
            "TX_FRAUD": [r[2] for r in rows],
            "TX_FRAUD_SCENARIO": [r[2] * 2 for r in rows],
        }
    )


# --------------------------------------------------------------------------- Split


def test_split_boundaries() -> None:
    assert SPLIT.train_start == BASE
    assert SPLIT.train_end == pd.Timestamp("2018-08-01")
    assert SPLIT.test_start == pd.Timestamp("2018-08-08")
    assert SPLIT.test_end == pd.Timestamp("2018-08-15")  # test days 08-08 .. 08-14
    custom = ev.Split("2018-07-01", train_days=3, delay_days=2, test_days=4)
    assert isinstance(custom.train_start, pd.Timestamp)
    assert (custom.train_end, custom.test_start, custom.test_end) == (
        pd.Timestamp("2018-07-04"),
        pd.Timestamp("2018-07-06"),
        pd.Timestamp("2018-07-10"),
    )


def test_split_requires_midnight_and_sane_lengths() -> None:
    with pytest.raises(ValueError, match="midnight"):
        ev.Split(pd.Timestamp("2018-07-25 00:00:01"))
    with pytest.raises(ValueError):
        ev.Split(BASE, test_days=0)
    with pytest.raises(ValueError):
        ev.Split(pd.Timestamp("2018-07-25", tz="UTC"))
    with pytest.raises(AttributeError):
        SPLIT.train_days = 3  # type: ignore[misc]


def test_split_masks_exclusive_ends() -> None:
    one_ns = 1e-9 / 86400 * 10  # a few ns past/before a boundary, in days
    df = frame(
        [
            (-one_ns, 1, 0),  # just before train start
            (0.0, 1, 0),  # train start: in
            (7 - one_ns, 1, 0),  # last instant of training: in
            (7.0, 1, 0),  # train_end: out (delay)
            (14 - one_ns, 1, 0),  # last instant of delay: out
            (14.0, 1, 0),  # test start: in
            (21 - one_ns, 1, 0),  # last instant of test: in
            (21.0, 1, 0),  # test_end: out
        ]
    )
    train, test = ev.split_masks(df, SPLIT)
    assert train.dtype == bool and test.dtype == bool
    assert train.tolist() == [False, True, True, False, False, False, False, False]
    assert test.tolist() == [False, False, False, False, False, True, True, False]


def test_split_masks_without_tx_time_days_and_other_units() -> None:
    df = frame([(0.5, 1, 0), (14.5, 1, 0), (3.0, 2, 0)]).drop(columns="TX_TIME_DAYS")
    df["TX_DATETIME"] = df["TX_DATETIME"].astype("datetime64[s]")
    train, test = ev.split_masks(df, SPLIT)
    assert train.tolist() == [True, False, True]
    assert test.tolist() == [False, True, False]
    # A file starting on another date: days come from TX_DATETIME, not TX_TIME_DAYS.
    other = frame([(0.5, 1, 0), (14.5, 1, 0)], start=pd.Timestamp("2021-01-10"))
    train, test = ev.split_masks(other, ev.Split("2021-01-10"))
    assert train.tolist() == [True, False] and test.tolist() == [False, True]


# --------------------------------------------------------------------------- test set


def test_test_set_mask_known_cards() -> None:
    # Each card: one (possible) fraud at the given day, then a genuine row on every test day.
    fraud_day = {
        1: 2.5,  # training window: known from test day 0
        2: 6.9,  # last training day (7 + 0 - 1 = 6): known from test day 0
        3: 7.2,  # first delay day (7 + 1 - 1): known from test day 1
        4: 10.0,  # known from test day 4
        5: 12.99,  # known from test day 6 (the last)
        6: 13.5,  # last delay day: would be test day 7 -> never known
        7: -0.01,  # before the training window: never known
        8: 15.5,  # a fraud inside the test window: not "known" (it is what we test)
    }
    rows: list[tuple[float, int, int]] = [(d, c, 1) for c, d in fraud_day.items()]
    rows += [(14 + i + 0.5, c, 0) for c in [*fraud_day, 9] for i in range(7)]
    df = frame(rows)
    mask = ev.test_set_mask(df, SPLIT)
    assert mask.dtype == bool and mask.shape == (len(df),)
    assert not mask[: len(fraud_day)][[0, 1, 2, 3, 4, 5, 6]].any()  # fraud rows outside test
    kept = {(c, int(d) - 14) for (d, c, _), m in zip(rows, mask, strict=True) if m and d >= 14}
    # Test day from which each card is dropped (7 = never); once known it stays known.
    dropped_from = {1: 0, 2: 0, 3: 1, 4: 4, 5: 6, 6: 7, 7: 7, 8: 7, 9: 7}
    for card, first_dropped in dropped_from.items():
        assert {i for c, i in kept if c == card} == set(range(first_dropped)), card
    # Card 8's own fraud inside the test window stays in the test set.
    assert mask[len(fraud_day) - 1]


def test_test_set_mask_general_lengths_and_hidden_labels() -> None:
    split = ev.Split(BASE, train_days=3, delay_days=2, test_days=3)  # test days 5, 6, 7
    rows = [
        (1.0, 1, 1),  # training fraud -> known from test day 0
        (2.0, 2, 1),  # day T + 0 - 1 = 2, last training day -> known from test day 0
        (3.0, 3, 1),  # day T + 1 - 1 -> known from test day 1
        (4.0, 4, 1),  # day T + 2 - 1 -> known from test day 2
    ]
    rows += [(5 + i + 0.1, c, 0) for c in (1, 2, 3, 4) for i in range(3)]
    df = frame(rows)
    mask = ev.test_set_mask(df, split)
    test_rows = mask[4:].reshape(4, 3)
    assert test_rows.tolist() == [
        [False, False, False],
        [False, False, False],
        [True, False, False],
        [True, True, False],
    ]
    # Only labels before the test window decide membership.
    hidden = ev.without_labels_from(df, split.test_start)
    assert (ev.test_set_mask(hidden, split) == mask).all()


def test_test_set_mask_accepts_nullable_labels() -> None:
    df = frame([(1.0, 1, 1), (14.5, 1, 0), (14.5, 2, 0)])
    df["TX_FRAUD"] = df["TX_FRAUD"].astype("Int64")
    df.loc[2, "TX_FRAUD"] = pd.NA
    assert ev.test_set_mask(df, SPLIT).tolist() == [False, False, True]


# --------------------------------------------------------------------------- CP@k


def cp_frame(rows: list[tuple[int, int, float, int]]) -> tuple[pd.DataFrame, np.ndarray]:
    """(test day, card, score, label) rows -> (df_test, scores)."""
    df = frame([(14 + d + 0.25, c, y) for d, c, _, y in rows])
    return df, np.array([s for _, _, s, _ in rows])


HAND = [
    # day 0: card 1 max score .9 and max label 1 (from different rows)
    (0, 1, 0.9, 0), (0, 1, 0.1, 1), (0, 2, 0.8, 0), (0, 3, 0.7, 1), (0, 4, 0.2, 1),
    # day 1: card 1 (detected on day 0) would top the list but is dropped
    (1, 1, 0.95, 1), (1, 3, 0.6, 1), (1, 4, 0.55, 1), (1, 2, 0.5, 0),
    # day 2: cards 1, 3, 4 all detected before; only card 2 (genuine) is left
    (2, 3, 0.99, 1), (2, 1, 0.98, 1), (2, 4, 0.97, 1), (2, 2, 0.1, 0),
]  # fmt: skip


def test_card_precision_hand_example() -> None:
    df, scores = cp_frame(HAND)
    mean, per_day = ev.card_precision_at_k(df, scores, k=2)
    # day 0 top 2: card 1 (fraud), card 2 -> 1/2; day 1: cards 3, 4 -> 2/2; day 2: card 2 -> 0
    assert per_day == [0.5, 1.0, 0.0]
    assert mean == pytest.approx(0.5)
    # Row order does not matter.
    perm = np.random.default_rng(0).permutation(len(df))
    mean2, per_day2 = ev.card_precision_at_k(df.iloc[perm], scores[perm], k=2)
    assert (mean2, per_day2) == (mean, per_day)


def test_card_precision_k_larger_than_cards_divides_by_k() -> None:
    df, scores = cp_frame(HAND)
    mean, per_day = ev.card_precision_at_k(df, scores, k=100)
    # day 0: cards 1, 3, 4 compromised; day 1: nothing left but card 2; day 2: same.
    assert per_day == [0.03, 0.0, 0.0]
    assert mean == pytest.approx(0.01)


def test_card_precision_ties_and_day_boundaries() -> None:
    # Tied scores: the lower card id wins, whatever the row order.
    df, scores = cp_frame([(0, 7, 0.5, 0), (0, 3, 0.5, 1)])
    assert ev.card_precision_at_k(df, scores, k=1) == (1.0, [1.0])
    df, scores = cp_frame([(0, 3, 0.5, 0), (0, 7, 0.5, 1)])
    assert ev.card_precision_at_k(df, scores, k=1) == (0.0, [0.0])
    # 23:59:59 and 00:00:00 the next day are different days; only days present count.
    df = frame([(14 + 1 - 1 / 86400, 1, 1), (15.0, 2, 1), (18.5, 3, 0)])
    mean, per_day = ev.card_precision_at_k(df, [0.1, 0.2, 0.3], k=1)
    assert per_day == [1.0, 1.0, 0.0]
    assert mean == pytest.approx(2 / 3)


def _reference_cp(df: pd.DataFrame, scores: np.ndarray, k: int) -> list[float]:
    """Plain-Python restatement of the rule, for a randomized cross-check."""
    days = df["TX_DATETIME"].dt.normalize().to_numpy()
    detected: set[int] = set()
    out = []
    for day in sorted(set(days)):
        best: dict[int, tuple[float, int]] = {}
        for c, s, y, d in zip(df["CUSTOMER_ID"], scores, df["TX_FRAUD"], days, strict=True):
            if d == day and c not in detected:
                s0, y0 = best.get(c, (-np.inf, 0))
                best[c] = (max(s0, s), max(y0, y))
        ranked = sorted(best, key=lambda c: (-best[c][0], c))[:k]
        hits = [c for c in ranked if best[c][1] == 1]
        out.append(len(hits) / k)
        detected.update(hits)
    return out


def test_card_precision_matches_reference_on_random_data() -> None:
    rng = np.random.default_rng(42)
    n = 600
    rows = [
        (float(d), int(c), int(y))
        for d, c, y in zip(
            14 + rng.uniform(0, 5, n), rng.integers(0, 60, n), rng.random(n) < 0.2, strict=True
        )
    ]
    df = frame(rows)
    scores = rng.random(n).round(2)  # rounding creates ties
    for k in (1, 5, 20, 100):
        mean, per_day = ev.card_precision_at_k(df, scores, k=k)
        assert per_day == pytest.approx(_reference_cp(df, scores, k))
        assert mean == pytest.approx(np.mean(per_day))


def test_card_precision_input_errors() -> None:
    df, scores = cp_frame(HAND)
    with pytest.raises(ValueError):
        ev.card_precision_at_k(df, scores[:-1])
    with pytest.raises(ValueError):
        ev.card_precision_at_k(df, scores, k=0)
    with pytest.raises(ValueError, match="missing"):
        ev.card_precision_at_k(ev.without_labels_from(df, BASE), scores)
    empty = df.iloc[:0]
    mean, per_day = ev.card_precision_at_k(empty, [])
    assert math.isnan(mean) and per_day == []


# --------------------------------------------------------------------------- metrics


def test_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(1)
    n = 400
    y = (rng.random(n) < 0.1).astype(int)
    rows = [
        (14 + float(d), int(c), int(t))
        for d, c, t in zip(rng.uniform(0, 7, n), rng.integers(0, 150, n), y, strict=True)
    ]
    df = frame(rows)
    scores = y * 0.3 + rng.random(n)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = ev.metrics(df["TX_FRAUD"], scores, df)
    assert set(got) == {"auc_roc", "average_precision", "card_precision_at_100"}
    assert got["auc_roc"] == pytest.approx(roc_auc_score(y, scores))
    assert got["average_precision"] == pytest.approx(average_precision_score(y, scores))
    assert got["card_precision_at_100"] == pytest.approx(
        ev.card_precision_at_k(df, scores, k=100)[0]
    )
    assert all(type(v) is float for v in got.values())


def test_metrics_degenerate_test_sets() -> None:
    df, scores = cp_frame([(0, 1, 0.2, 0), (0, 2, 0.9, 0), (1, 3, 0.5, 0)])
    with pytest.warns(ev.DegenerateTestSetWarning, match="only genuine"):
        got = ev.metrics(df["TX_FRAUD"], scores, df)
    assert math.isnan(got["auc_roc"]) and math.isnan(got["average_precision"])
    assert got["card_precision_at_100"] == 0.0

    df["TX_FRAUD"] = 1
    with pytest.warns(ev.DegenerateTestSetWarning, match="only fraud"):
        got = ev.metrics(df["TX_FRAUD"], scores, df)
    assert math.isnan(got["auc_roc"])
    assert got["card_precision_at_100"] == pytest.approx((2 / 100 + 1 / 100) / 2)

    with pytest.warns(ev.DegenerateTestSetWarning, match="empty"):
        got = ev.metrics([], [], df.iloc[:0])
    assert all(math.isnan(v) for v in got.values())


def test_metrics_rejects_hidden_labels_and_misaligned_inputs() -> None:
    df, scores = cp_frame(HAND)
    with pytest.raises(ValueError, match="missing"):
        ev.metrics(ev.without_labels_from(df, BASE)["TX_FRAUD"], scores, df)
    with pytest.raises(ValueError):
        ev.metrics(df["TX_FRAUD"], scores[:3], df)
    with pytest.raises(ValueError, match="missing"):
        ev.metrics(df["TX_FRAUD"], np.where(scores > 0.5, np.nan, scores), df)


def test_score_columns_to_metrics() -> None:
    df, scores = cp_frame(HAND)
    other = scores[::-1].copy()
    expected = {
        "lr": ev.metrics(df["TX_FRAUD"], scores, df),
        "ensemble": ev.metrics(df["TX_FRAUD"], other, df),
    }
    # Positional alignment.
    assert ev.score_columns_to_metrics(df, {"lr": scores, "ensemble": other}) == expected
    # Matched on TRANSACTION_ID, in another order and with extra rows.
    out = pd.DataFrame({"TRANSACTION_ID": df["TRANSACTION_ID"], "lr": scores, "ensemble": other})
    extra = pd.DataFrame({"TRANSACTION_ID": [999], "lr": [0.0], "ensemble": [0.0]})
    shuffled = pd.concat([out, extra]).sample(frac=1.0, random_state=3)
    assert ev.score_columns_to_metrics(df, shuffled) == expected
    with pytest.raises(ValueError, match="no scores"):
        ev.score_columns_to_metrics(df, out.iloc[1:])


# --------------------------------------------------------------------------- labels


def test_without_labels_from_hides_with_nan() -> None:
    df = frame([(13.9, 1, 1), (14.0, 2, 1), (14.5, 3, 0), (3.0, 4, 0)])
    before = df.copy()
    # A time of day is floored to midnight: rows on 2018-08-08 are all hidden.
    hidden = ev.without_labels_from(df, pd.Timestamp("2018-08-08 15:00"))
    pd.testing.assert_frame_equal(df, before)  # input untouched
    assert hidden["TX_FRAUD"].dtype == "float64"
    assert hidden["TX_FRAUD"].isna().tolist() == [False, True, True, False]
    assert hidden["TX_FRAUD_SCENARIO"].isna().tolist() == [False, True, True, False]
    assert hidden["TX_FRAUD"].iloc[0] == 1 and hidden["TX_FRAUD"].iloc[3] == 0
    # Hidden is not genuine: NaN != 0.
    assert not (hidden["TX_FRAUD"] == 0).iloc[2]
    other = [c for c in df.columns if c not in ev.LABEL_COLUMNS]
    pd.testing.assert_frame_equal(hidden[other], df[other])
    # Works without the scenario column too.
    no_scenario = ev.without_labels_from(df.drop(columns="TX_FRAUD_SCENARIO"), "2018-08-08")
    assert no_scenario["TX_FRAUD"].isna().sum() == 2
