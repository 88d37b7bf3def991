"""The batch path: equal to the stream and to the definitions for random configs and
sequences, equal to the Handbook's own feature values on the Handbook preset, and running
end to end on the Sparkov preset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aegis_app.core.config import load
from aegis_app.core.source import SourceReader
from tables.engine import RecordError, compute_features
from tests.tables.engine.cases import START, run_stream, stream_cases
from tests.tables.engine.driver import assert_rows_equal, mismatches, same
from tests.tables.engine.reference import reference_features

ROOT = Path(__file__).resolve().parents[3]


def frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- properties


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(stream_cases(), st.randoms(use_true_random=False))
def test_stream_equals_batch_equals_the_definitions(case, random):
    config, rows, sequence, corrections = case
    # Rows of different seconds shuffled: the batch sorts them back (stable within a second).
    seconds = sorted({r["ts"] for r in sequence})
    rank = {s: random.random() for s in seconds}
    shuffled = sorted(range(len(sequence)), key=lambda i: rank[sequence[i]["ts"]])
    batch = compute_features(frame([sequence[i] for i in shuffled]), config)
    assert list(batch.columns) == list(config.feature_names)
    batch_list = batch.to_dict("records")
    batch_in_order = [{}] * len(sequence)
    for position, i in enumerate(shuffled):
        batch_in_order[i] = batch_list[position]

    stream = run_stream(config, sequence, corrections)
    reference = reference_features(config, sequence)
    # One kernel sums each window in one order: the two paths agree bit for bit.
    assert_rows_equal(stream, batch_in_order, "stream vs batch", exact=True)
    assert_rows_equal(batch_in_order, reference, "batch vs definitions")
    # A redelivery is answered as the first time.
    first: dict[str, dict] = {}
    for record, features in zip(sequence, stream):
        previous = first.setdefault(record["transaction_id"], features)
        assert not mismatches(features, previous)


# --------------------------------------------------------------------------- presets


KNOWN = Path(__file__).with_name("handbook_known.json")


def test_the_handbook_preset_gives_the_handbook_features():
    """The Handbook preset on a generated file, read by its source reader, gives the values
    the Handbook feature code (tables/features.py, before the engine replaced it) gave on
    the same file: every column's sum, sum of squares and range, and 22 whole rows (high
    terminal risk, new terminals, large z-scores, random ones)."""
    from aegis_app.harness.simulator import generate

    known = json.loads(KNOWN.read_text())
    config = load(ROOT / "configs" / "handbook.toml")
    df = generate(**{k: known["generated"][k] for k in ("customers", "terminals", "days", "seed")})
    # The same file as when the values were recorded.
    assert len(df) == known["generated"]["rows"]
    assert df["TX_FRAUD"].sum() == known["generated"]["frauds"]
    assert df["TX_AMOUNT"].sum() == pytest.approx(known["generated"]["amount_sum"], rel=1e-12)
    normalised, bad = SourceReader(config).frame(df)
    assert not bad
    got = compute_features(normalised, config)
    assert list(got.columns) == known["features"] == list(config.feature_names)
    for name, expected in known["columns"].items():
        values = got[name].to_numpy(dtype=float)
        assert values.sum() == pytest.approx(expected["sum"], rel=1e-9, abs=1e-9), name
        assert (values**2).sum() == pytest.approx(expected["sum_of_squares"], rel=1e-9, abs=1e-9), (
            name
        )
        assert values.min() == pytest.approx(expected["min"], rel=1e-9, abs=1e-9), name
        assert values.max() == pytest.approx(expected["max"], rel=1e-9, abs=1e-9), name
    by_id = got.set_index(normalised["transaction_id"].to_numpy())
    for tx_id, row in known["rows"].items():
        for name, expected in row.items():
            assert by_id.loc[tx_id, name] == pytest.approx(expected, rel=1e-9, abs=1e-9), (
                tx_id,
                name,
            )


def sparkov_frame(path: Path) -> pd.DataFrame:
    """The Sparkov slice, normalised by the source reader of its preset."""
    reader = SourceReader(load(ROOT / "configs" / "sparkov.toml"))
    frame, bad = reader.frame(pd.read_csv(path, dtype=reader.csv_dtypes()))
    assert not bad, bad[:3]
    return frame


def test_the_sparkov_preset_runs_end_to_end(sparkov_slice):
    path = sparkov_slice
    config = load(ROOT / "configs" / "sparkov.toml")
    df = sparkov_frame(path)
    assert len(df) == 13_614
    got = compute_features(df, config)
    assert len(got) == len(df) and tuple(got.columns) == config.feature_names
    assert (got["card_count_1d"] >= 1).all() and (got["card_count_30d"] >= 1).all()
    assert got["cardholder_age"].between(10, 100).all()
    assert (got["distance_home_merchant_km"] >= 0).all()
    assert got["distance_home_merchant_km"].max() < 200  # Sparkov merchants are close by
    assert set(got["category"]) == set(df["category"])
    assert set(got["gender"]) == {"F", "M"}
    assert got["merchant_fraud_share_30d"].between(0, 1).all()
    assert (got["card_amount_std_30d"] >= 0).all()
    assert got["tx_hour"].between(0, 23).all()
    numeric = got.drop(columns=["category", "gender"]).to_numpy(dtype=float)
    assert np.isfinite(numeric).all()
    # The slice spans 8 days: windows ending 7 days back hold its first day only.
    assert got["merchant_count_30d_delayed"].max() >= 1


# --------------------------------------------------------------------------- details


def test_rows_keep_their_order_and_index():
    config = load(ROOT / "configs" / "handbook.toml")
    rows = [
        {
            "transaction_id": "b",
            "card": "1",
            "merchant": "m",
            "amount": 20.0,
            "ts": START + 60,
            "label": 0,
        },
        {
            "transaction_id": "a",
            "card": "1",
            "merchant": "m",
            "amount": 10.0,
            "ts": START,
            "label": 0,
        },
    ]
    got = compute_features(pd.DataFrame(rows, index=[7, 3]), config)
    assert list(got.index) == [7, 3]
    assert got.loc[7, "CUSTOMER_ID_NB_TX_1DAY_WINDOW"] == 2.0
    assert got.loc[3, "CUSTOMER_ID_NB_TX_1DAY_WINDOW"] == 1.0
    assert got.loc[7, "CUSTOMER_ID_AVG_AMOUNT_1DAY_WINDOW"] == 15.0


def test_a_repeated_transaction_id_is_a_redelivery_in_batch_too():
    config = load(ROOT / "configs" / "handbook.toml")
    base = {"card": "1", "merchant": "m", "amount": 10.0, "label": None}
    rows = [
        {**base, "transaction_id": "a", "ts": START},
        {**base, "transaction_id": "b", "ts": START + 10, "amount": 30.0},
        {**base, "transaction_id": "a", "ts": START},
        {**base, "transaction_id": "c", "ts": START + 20},
    ]
    got = compute_features(pd.DataFrame(rows), config)
    counts = got["CUSTOMER_ID_NB_TX_1DAY_WINDOW"].tolist()
    assert counts == [1.0, 2.0, 1.0, 3.0]
    stream = run_stream(config, rows)
    assert [f["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] for f in stream] == counts
    assert all(same(s[n], got.iloc[i][n]) for i, s in enumerate(stream) for n in s)


def test_a_missing_column_is_named():
    config = load(ROOT / "configs" / "handbook.toml")
    df = pd.DataFrame([{"transaction_id": "a", "card": "1", "amount": 1.0, "ts": START}])
    with pytest.raises(RecordError, match="'merchant'"):
        compute_features(df, config)


def test_a_fractional_time_is_refused():
    config = load(ROOT / "configs" / "handbook.toml")
    df = pd.DataFrame(
        [{"transaction_id": "a", "card": "1", "merchant": "m", "amount": 1.0, "ts": 1.5}]
    )
    with pytest.raises(RecordError, match="ts must be int epoch seconds"):
        compute_features(df, config)


def test_an_empty_frame_gives_an_empty_result():
    config = load(ROOT / "configs" / "handbook.toml")
    df = pd.DataFrame(columns=["transaction_id", "card", "merchant", "amount", "ts", "label"])
    got = compute_features(df.astype({"ts": "int64", "amount": float}), config)
    assert got.empty and tuple(got.columns) == config.feature_names
