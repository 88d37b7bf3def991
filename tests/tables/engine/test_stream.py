"""The stream path: equal to the definitions with labels arriving late and transactions out
of order; redeliveries, labels, missing keys and bad records."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aegis_app.core.config import load, parse
from aegis_app.core.timerules import DAY
from tables.engine import RecordError, StreamEngine
from tables.engine.state import StateError
from tests.tables.engine.cases import SOURCE, START, configs, records
from tests.tables.engine.driver import Driver, assert_rows_equal
from tests.tables.engine.reference import reference_features

ROOT = Path(__file__).resolve().parents[3]
SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def deliver(driver: Driver, arrivals: list[dict]) -> list[dict]:
    """Observe `arrivals` in order; each label is delivered once its known_at is reached
    by a transaction's time, before that transaction."""
    pending = sorted((r for r in arrivals if r["label"] is not None), key=lambda r: r["known_at"])
    out = []
    for record in arrivals:
        while pending and pending[0]["known_at"] <= record["ts"]:
            labelled = pending.pop(0)
            driver.label(labelled, bool(labelled["label"]), labelled["known_at"])
        out.append(driver.observe(record))
    return out


@SETTINGS
@given(configs(), records(), st.data())
def test_labels_count_from_their_known_time_whenever_it_is(config, rows, data):
    """Labels known at any time after their transaction (an analyst at once, a chargeback
    weeks later): a fraud counts once it is known, not before."""
    for row in rows:
        extra = data.draw(st.sampled_from([0, 1, DAY, 20 * DAY]))
        row["known_at"] = row["ts"] + config.label_delay_days * DAY + extra
    got = deliver(Driver(StreamEngine(config)), rows)
    assert_rows_equal(got, reference_features(config, rows), "stream vs definitions")


def slack(config) -> int:
    """How late a transaction may arrive and still find its whole window in every state."""
    engine = StreamEngine(config)
    spare = [
        entity.horizon - (window.span + window.delay)
        for entity in engine.plan.entities.values()
        for window in entity.windows
    ]
    return min(spare)


@SETTINGS
@given(configs(label_delays=(1, 2), delayed_everywhere=True), records(), st.data())
def test_late_arrivals_within_a_label_delay_find_their_whole_window(config, rows, data):
    late = slack(config)
    assert late >= DAY  # the label delay each entity keeps for this
    for row in rows:
        row["known_at"] = row["ts"] + config.label_delay_days * DAY
    # Arrival order: by time plus a random lateness of up to `late`.
    jitter = [data.draw(st.integers(0, late)) for _ in rows]
    arrivals = [rows[i] for i in sorted(range(len(rows)), key=lambda i: rows[i]["ts"] + jitter[i])]
    got = deliver(Driver(StreamEngine(config)), arrivals)
    assert_rows_equal(got, reference_features(config, arrivals), "stream vs definitions")


# --------------------------------------------------------------------------- behaviour


def handbook() -> StreamEngine:
    return StreamEngine(load(ROOT / "configs" / "handbook.toml"))


def tx(tx_id: str, ts: int, amount: float = 10.0, card: str = "c", merchant: str = "m"):
    return {
        "transaction_id": tx_id,
        "card": card,
        "merchant": merchant,
        "amount": amount,
        "ts": ts,
        "label": None,
    }


def test_a_redelivery_gets_the_same_features_and_leaves_the_state_alone():
    driver = Driver(handbook())
    first = driver.observe(tx("a", START, 10.0))
    driver.observe(tx("b", START, 30.0))  # same second, arrives after a
    before = dict(driver.states)
    again = driver.observe(tx("a", START, 10.0))
    assert again == first
    assert driver.states == before
    assert driver.engine.state_size("card", driver.states[("card", "c")]).events == 2


def test_a_label_replaces_the_earlier_one_and_a_genuine_label_removes_a_fraud():
    engine = handbook()
    state = None
    state = engine.observe_label("terminal", state, "a", START, START + 7 * DAY, True)
    state = engine.observe_label("terminal", state, "a", START, START + 8 * DAY, True)
    assert engine.state_size("terminal", state).labels == 1
    state = engine.observe_label("terminal", state, "a", START, START + 9 * DAY, False)
    assert engine.state_size("terminal", state).labels == 0


def test_a_fraud_counts_from_its_known_time_even_when_the_label_came_first():
    driver = Driver(handbook())
    # The label reaches the terminal's state before its transaction does.
    driver.label(tx("a", START), True, START + 7 * DAY)
    driver.observe(tx("a", START))
    risk = "TERMINAL_ID_RISK_1DAY_WINDOW"
    assert driver.observe(tx("b", START + 7 * DAY - 1))[risk] == 0.0  # a is not in (t-8d, t-7d]
    assert driver.observe(tx("c", START + 7 * DAY))[risk] == 1.0
    assert driver.observe(tx("d", START + 8 * DAY - 1))[risk] == 1.0
    assert driver.observe(tx("e", START + 8 * DAY))[risk] == 0.0  # a left the window


def test_a_label_counts_from_the_second_it_is_known_next_to_one_not_yet_known():
    driver = Driver(handbook())
    driver.observe(tx("a", START - 3600))
    driver.observe(tx("b", START))
    driver.label(tx("a", START - 3600), True, START + 20 * DAY)  # known long after
    driver.label(tx("b", START), True, START + 7 * DAY)  # known exactly at c's time
    features = driver.observe(tx("c", START + 7 * DAY))
    assert features["TERMINAL_ID_NB_TX_1DAY_WINDOW"] == 2.0
    assert features["TERMINAL_ID_RISK_1DAY_WINDOW"] == 0.5


def test_a_label_known_later_than_the_transaction_it_would_help_is_not_used():
    driver = Driver(handbook())
    driver.observe(tx("a", START))
    driver.label(tx("a", START), True, START + 20 * DAY)  # a chargeback, 20 days later
    features = driver.observe(tx("b", START + 7 * DAY + 60))
    assert features["TERMINAL_ID_NB_TX_1DAY_WINDOW"] == 1.0
    assert features["TERMINAL_ID_RISK_1DAY_WINDOW"] == 0.0


def test_state_keeps_exactly_the_window_at_its_edge():
    engine = StreamEngine(
        parse(
            {
                "source": SOURCE,
                "entities": {"card": "card", "merchant": "merchant"},
                "features": [{"kind": "count", "entity": "card", "window_days": 1}],
            }
        )
    )
    driver = Driver(engine)
    driver.observe(tx("a", START))
    # One second less than a day later: a is still in the window, also for a same-second
    # transaction after b (b's write must not prune a).
    assert driver.observe(tx("b", START + DAY - 1))["card_count_1d"] == 2.0
    assert driver.observe(tx("c", START + DAY - 1))["card_count_1d"] == 3.0
    assert driver.observe(tx("d", START + DAY))["card_count_1d"] == 3.0
    assert engine.state_size("card", driver.states[("card", "c")]).events == 3


def test_a_missing_entity_key_gives_nan_and_keeps_no_state():
    config = load(ROOT / "configs" / "sparkov.toml")
    engine = StreamEngine(config)
    record = {
        "transaction_id": "t1",
        "card": "4" * 19,
        "merchant": "fraud_Kirlin",
        "amount": 12.5,
        "ts": START,
        "label": None,
        "category": None,
        "gender": "F",
        "state": "NY",
        "city_pop": 1000.0,
        "dob": START - 40 * 365 * DAY,
        "home.lat": 40.0,
        "home.lon": -74.0,
        "merchant_location.lat": 40.5,
        "merchant_location.lon": -74.5,
    }
    assert engine.keys(record)["category"] is None
    features, states = engine.observe(record, {})
    assert set(states) == {"card", "merchant"}
    assert math.isnan(features["category_fraud_share_7d"])
    assert features["category"] is None
    assert features["card_count_1d"] == 1.0
    assert features["cardholder_age"] == pytest.approx(40 * 365 / 365.25)


def test_a_record_without_a_column_is_refused_with_its_name():
    engine = handbook()
    record = tx("a", START)
    del record["amount"]
    with pytest.raises(RecordError, match="'amount'"):
        engine.observe(record, {})
    with pytest.raises(RecordError, match="ts must be int"):
        engine.observe({**tx("a", START), "ts": "2018-04-01"}, {})


def test_a_state_of_other_features_is_refused():
    engine = handbook()
    _, states = engine.observe(tx("a", START), {})
    with pytest.raises(StateError, match="written for other features"):
        engine.observe(tx("b", START), {"card": states["terminal"]})


def test_labels_go_only_to_entities_with_label_features():
    engine = handbook()
    assert engine.label_entities == ("terminal",)
    with pytest.raises(ValueError, match="no label-based features"):
        engine.observe_label("card", None, "a", START, START, True)


def test_keys_are_the_key_text_of_each_entitys_column():
    """Text keys as they are; numbers, NaN, None and pandas' NA through key_text."""
    import pandas as pd

    from tables.engine.keys import key_text

    engine = StreamEngine(load(ROOT / "configs" / "sparkov.toml"))
    base = {"card": "4" * 19, "merchant": "fraud_Kirlin", "category": "grocery_pos"}
    for card, category in [
        ("123", "travel"),
        (123, 4.0),
        (1.5, None),
        (float("nan"), pd.NA),
        (np.str_("77"), ""),
    ]:
        record = {**base, "card": card, "category": category}
        expected = {
            name: key_text(record[e.column], e.key_is_numeric)
            for name, e in engine.plan.entities.items()
        }
        assert engine.keys(record) == expected
