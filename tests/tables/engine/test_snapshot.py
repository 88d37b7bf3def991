"""The snapshot path: the states built from a whole frame at once equal the states the
stream holds after observing the same records and labels one at a time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aegis_app.core.config import load
from aegis_app.core.timerules import DAY
from tables.engine import RecordError, StreamEngine
from tables.engine import state as packed
from tables.engine.snapshot import build_states
from tests.tables.engine.cases import START, configs, records
from tests.tables.engine.driver import Driver
from tests.tables.engine.test_batch import sparkov_frame

ROOT = Path(__file__).resolve().parents[3]
SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def stream_states(config, rows: list[dict]) -> dict[tuple[str, str], bytes]:
    """The Driver's states after `rows` (time-ordered), each row's label delivered at its
    known time (before the first transaction at or after it; the rest at the end), in
    order of known time, then row."""
    driver = Driver(StreamEngine(config))
    delay = int(config.label_delay_days * DAY)
    pending = sorted(
        ((r["ts"] + delay, n) for n, r in enumerate(rows) if r["label"] is not None),
    )

    def deliver(until: float) -> None:
        while pending and pending[0][0] <= until:
            known_at, n = pending.pop(0)
            driver.label(rows[n], bool(rows[n]["label"]), known_at)

    for record in rows:
        deliver(record["ts"])
        driver.observe(record)
    deliver(float("inf"))
    return driver.states


def snapshot_states(config, frame: pd.DataFrame) -> dict[tuple[str, str], bytes]:
    return {
        (entity, key): blob
        for entity, built in build_states(frame, config).items()
        for key, blob in built.states.items()
    }


def assert_same_states(config, got: dict, want: dict) -> None:
    """Equal decoded states (times, cells, labels) for the same (entity, key)s."""
    assert set(got) == set(want)
    plan = StreamEngine(config).plan
    for (entity, key), blob in want.items():
        mine = packed.decode(plan.entities[entity], got[(entity, key)])
        theirs = packed.decode(plan.entities[entity], blob)
        where = f"{entity} {key!r}"
        assert mine.ts.tolist() == theirs.ts.tolist(), where
        assert np.array_equal(mine.cells, theirs.cells), where
        assert np.array_equal(mine.labels, theirs.labels), where


@st.composite
def with_repeats(draw):
    """Time-ordered records, some of them an earlier record again later (a redelivery
    days after, or a reused id): the stream counts it again only once it has pruned it."""
    rows = draw(records(max_size=30))
    out: list[dict] = []
    for row in rows:
        if out and draw(st.integers(0, 5)) == 0:
            again = dict(draw(st.sampled_from(out)))
            again["ts"] = row["ts"]
            again["label"] = draw(st.sampled_from([None, 0, 1]))
            out.append(again)
        out.append(row)
    return out


@SETTINGS
@given(configs(), with_repeats())
def test_snapshot_states_equal_the_streams(config, rows):
    want = stream_states(config, rows)
    got = snapshot_states(config, pd.DataFrame(rows))
    assert_same_states(config, got, want)


@SETTINGS
@given(configs(label_delays=(1, 7)), records(max_size=30), st.integers(10, 60))
def test_a_long_history_is_pruned_like_the_streams(config, rows, spread_days):
    """Records spread over weeks: most of each key's history falls off its horizon."""
    for i, row in enumerate(rows):
        row["ts"] = START + i * spread_days * DAY // len(rows) + row["ts"] - rows[0]["ts"]
    rows.sort(key=lambda r: r["ts"])
    want = stream_states(config, rows)
    assert_same_states(config, snapshot_states(config, pd.DataFrame(rows)), want)


def test_the_states_are_the_streams_bytes_on_the_sparkov_slice(sparkov_slice):
    config = load(ROOT / "configs" / "sparkov.toml")
    frame = sparkov_frame(sparkov_slice)
    rows = frame.iloc[np.argsort(frame["ts"].to_numpy(), kind="stable")].to_dict("records")
    want = stream_states(config, rows)
    got = snapshot_states(config, frame)
    assert got == want  # byte for byte
    assert {entity for entity, _ in got} == {"card", "merchant", "category"}


def test_a_frame_without_a_kept_column_is_refused_with_its_name():
    config = load(ROOT / "configs" / "handbook.toml")
    frame = pd.DataFrame({"transaction_id": ["a"], "ts": [START], "card": ["c"]})
    with pytest.raises(RecordError, match="'merchant'"):
        build_states(frame, config)
