"""Feature state: the stream's per-event state equals a brute-force reading of the
definitions, and batch (tables.batch) equals the stream, for random event sequences."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from tables.batch import compute_features
from tables.features import (
    ALL_FEATURES,
    DAY,
    REFERENCE_FEATURES,
    WINDOWS_DAYS,
    CardState,
    TerminalState,
    assemble,
)

DELAY = 7
START = 1_522_540_800  # 2018-04-01 00:00:00 UTC


@st.composite
def transactions(draw):
    """Time-ordered transactions on a few cards/terminals, with same-second duplicates."""
    n = draw(st.integers(1, 60))
    # Coarse steps (many zeros) make same-second duplicates common; large ones cross windows.
    steps = draw(
        st.lists(
            st.sampled_from([0, 0, 1, 600, 3 * 3600, DAY, 5 * DAY, 9 * DAY]), min_size=n, max_size=n
        )
    )
    times = np.cumsum(steps) + START
    rows = []
    for i in range(n):
        rows.append(
            {
                "id": i,
                "ts": int(times[i]),
                "card": draw(st.integers(0, 3)),
                "terminal": draw(st.integers(0, 3)),
                "amount": draw(st.floats(0, 500, allow_nan=False).map(lambda a: round(a, 2))),
                "fraud": draw(st.sampled_from([0, 0, 0, 1])),
                # Analysts label at once, chargebacks after the delay or much later.
                "known_after": draw(st.sampled_from([0, DELAY * DAY, 20 * DAY])),
            }
        )
    return rows


def roundtrip(value):
    """What a Faust table does to a value: JSON out, JSON in."""
    return json.loads(json.dumps(value))


def stream_features(rows, label_slots):
    """Drive the state one event at a time, as the workers do (state stored as JSON).

    label_slots[i] = index of the transaction before which row i's label is delivered
    (len(rows) = after the last one); always after row i itself (labels come late).
    """
    cards: dict[int, list] = {}
    terminals: dict[int, list] = {}
    due: dict[int, list[int]] = {}
    for i, slot in enumerate(label_slots):
        due.setdefault(slot, []).append(i)
    out = []
    for i, row in enumerate(rows):
        for j in due.get(i, []):
            label_row = rows[j]
            state = TerminalState.from_value(terminals.get(label_row["terminal"]))
            state.add_label(
                label_row["id"],
                label_row["ts"],
                label_row["ts"] + label_row["known_after"],
                bool(label_row["fraud"]),
            )
            terminals[label_row["terminal"]] = roundtrip(state.to_value())
        card = CardState.from_value(cards.get(row["card"]))
        card_part = card.observe(row["id"], row["ts"], row["amount"], row["terminal"])
        cards[row["card"]] = roundtrip(card.to_value())
        terminal = TerminalState.from_value(terminals.get(row["terminal"]))
        terminal_part = terminal.observe(row["id"], row["ts"], DELAY)
        terminals[row["terminal"]] = roundtrip(terminal.to_value())
        out.append(assemble(row["amount"], row["ts"], card_part, terminal_part))
    return out


def reference_features(rows, label_slots):
    """The Handbook's definitions, computed naively from the whole event list."""
    out = []
    for i, row in enumerate(rows):
        t = row["ts"]
        feats = {}
        same_card = [r for r in rows[: i + 1] if r["card"] == row["card"]]
        for w in WINDOWS_DAYS:
            window = [r["amount"] for r in same_card if t - w * DAY < r["ts"] <= t]
            feats[f"CUSTOMER_ID_NB_TX_{w}DAY_WINDOW"] = len(window)
            feats[f"CUSTOMER_ID_AVG_AMOUNT_{w}DAY_WINDOW"] = sum(window) / len(window)
            end = t - DELAY * DAY
            delayed = [
                j
                for j, r in enumerate(rows)
                if r["terminal"] == row["terminal"] and end - w * DAY < r["ts"] <= end
            ]
            known_frauds = sum(
                1
                for j in delayed
                if rows[j]["fraud"]
                and label_slots[j] <= i
                and rows[j]["ts"] + rows[j]["known_after"] <= t
            )
            feats[f"TERMINAL_ID_NB_TX_{w}DAY_WINDOW"] = len(delayed)
            feats[f"TERMINAL_ID_RISK_{w}DAY_WINDOW"] = known_frauds / len(delayed) if delayed else 0
        out.append(feats)
    return out


@st.composite
def sequences(draw):
    rows = draw(transactions())
    # Labels arrive late: after their transaction, anywhere up to the end of the stream.
    slots = [draw(st.integers(i + 1, len(rows))) for i in range(len(rows))]
    return rows, slots


@settings(max_examples=200, deadline=None)
@given(sequences())
def test_stream_state_matches_the_definitions(case):
    rows, slots = case
    got = stream_features(rows, slots)
    want = reference_features(rows, slots)
    for g, w in zip(got, want):
        for name, value in w.items():
            assert math.isclose(g[name], value, rel_tol=1e-12, abs_tol=1e-9), name


def on_time_slots(rows):
    """Each label delivered just before the first transaction at or after its known time."""
    slots = []
    for i, row in enumerate(rows):
        known = row["ts"] + DELAY * DAY
        later = [k for k in range(i + 1, len(rows)) if rows[k]["ts"] >= known]
        slots.append(later[0] if later else len(rows))
    return slots


@settings(max_examples=150, deadline=None)
@given(transactions())
def test_batch_equals_stream(rows):
    for row in rows:  # batch publishes every label exactly `delay` days after its transaction
        row["known_after"] = DELAY * DAY
    frame = pd.DataFrame(
        {
            "TRANSACTION_ID": [r["id"] for r in rows],
            "TX_DATETIME": pd.to_datetime([r["ts"] for r in rows], unit="s"),
            "CUSTOMER_ID": [r["card"] for r in rows],
            "TERMINAL_ID": [r["terminal"] for r in rows],
            "TX_AMOUNT": [r["amount"] for r in rows],
            "TX_FRAUD": [r["fraud"] for r in rows],
        }
    )
    batch = compute_features(frame, DELAY)
    stream = stream_features(rows, on_time_slots(rows))
    for i, features in enumerate(stream):
        assert list(batch.iloc[i]) == [features[name] for name in ALL_FEATURES]


def test_redelivery_is_idempotent():
    card = CardState()
    first = card.observe(1, START, 10.0, 5)
    card.observe(2, START + 10, 30.0, 6)
    again = card.observe(1, START, 10.0, 5)
    assert again == first
    assert len(card) == 2
    terminal = TerminalState()
    terminal.observe(1, START)
    terminal.observe(1, START)
    assert len(terminal) == 1


def test_state_stays_bounded_over_a_long_history():
    card, terminal = CardState(), TerminalState()
    for i in range(2000):  # one transaction every 6 hours for 500 days
        ts = START + i * 6 * 3600
        card.observe(i, ts, 20.0, 1)
        terminal.observe(i, ts)
        terminal.add_label(i, ts, ts + DELAY * DAY, i % 10 == 0)
    assert len(card) <= 30 * 4
    assert len(terminal) <= (30 + 2 * DELAY) * 4
    assert len(terminal.frauds) <= (30 + 2 * DELAY) * 4 // 10 + 1


def test_label_is_not_used_before_it_is_known():
    terminal = TerminalState()
    terminal.observe(1, START)
    known_at = START + 20 * DAY  # a chargeback long after the transaction
    terminal.add_label(1, START, known_at, True)  # delivered before it is due
    just_before = terminal.features(known_at - 1)
    at_known = terminal.features(known_at)
    assert just_before["TERMINAL_ID_NB_TX_30DAY_WINDOW"] == 1.0
    assert just_before["TERMINAL_ID_RISK_30DAY_WINDOW"] == 0.0
    assert at_known["TERMINAL_ID_RISK_30DAY_WINDOW"] == 1.0


def test_reference_feature_names_follow_the_handbook():
    assert len(REFERENCE_FEATURES) == 15
    assert REFERENCE_FEATURES[:3] == ("TX_AMOUNT", "TX_DURING_WEEKEND", "TX_DURING_NIGHT")
    ts = START + 5 * DAY + 3600  # 2018-04-06 01:00, a Friday night
    friday_night = assemble(
        1.0, ts, CardState().observe(1, ts, 1.0, 1), TerminalState().features(ts)
    )
    assert friday_night["TX_DURING_WEEKEND"] == 0.0
    assert friday_night["TX_DURING_NIGHT"] == 1.0
    sunday_noon = assemble(
        1.0,
        ts + 2 * DAY + 11 * 3600,
        CardState().observe(2, ts, 1.0, 1),
        TerminalState().features(ts),
    )
    assert sunday_noon["TX_DURING_WEEKEND"] == 1.0
    assert sunday_noon["TX_DURING_NIGHT"] == 0.0
