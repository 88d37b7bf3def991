"""Reading records of the user's schema (configs/sparkov.toml) into normalised ones: good
rows keep their types, bad rows are reported with their line and column, one record at a
time or a whole file at once, with the same verdicts."""

from __future__ import annotations

import io
import math
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aegis_app.core.config import load
from aegis_app.core.records import InvalidRecord
from aegis_app.core.source import SourceReader

ROOT = Path(__file__).resolve().parents[3]
HEADER = (
    "trans_date_trans_time,cc_num,merchant,category,amt,gender,state,city_pop,dob,"
    "trans_num,lat,long,merch_lat,merch_long,is_fraud"
)
GOOD = (
    "2019-01-07 13:04:46,4599735407877245080,fraud_Medhurst Inc,home,83.03,F,TN,5577,"
    "1964-12-30,2a2420bc51233f5769d30fa9c101ff7a,36.3846,-89.4649,37.3,-89.2,0"
)


@pytest.fixture(scope="module")
def reader() -> SourceReader:
    return SourceReader(load(ROOT / "configs" / "sparkov.toml"))


def _csv(reader: SourceReader, *rows: str) -> pd.DataFrame:
    text = "\n".join([HEADER, *rows])
    return pd.read_csv(io.StringIO(text), dtype=reader.csv_dtypes())


def test_a_19_digit_card_and_a_hex_id_stay_text(reader):
    good, bad = reader.frame(_csv(reader, GOOD))
    assert bad == []
    row = good.iloc[0]
    assert row["card"] == "4599735407877245080"
    assert row["transaction_id"] == "2a2420bc51233f5769d30fa9c101ff7a"
    assert row["ts"] == 1546866286  # 2019-01-07 13:04:46 UTC
    assert row["dob"] == -157939200  # 1964-12-30
    assert (row["home.lat"], row["merchant_location.lon"]) == (36.3846, -89.2)
    assert row["category"] == "home" and row["label"] == 0


def test_bad_rows_are_reported_with_their_line_and_column(reader):
    bad_rows = [
        GOOD.replace("83.03", "abc"),
        GOOD.replace("2019-01-07 13:04:46", "2019-13-07 13:04:46"),
        GOOD.replace("36.3846", "136.3846"),
        GOOD.replace("4599735407877245080", ""),
        GOOD[: GOOD.rindex(",")] + ",3",
        GOOD.replace("1964-12-30", "30/12/1964"),
    ]
    good, bad = reader.frame(_csv(reader, GOOD, *bad_rows, GOOD))
    assert len(good) == 2
    assert [line for line, _ in bad] == [3, 4, 5, 6, 7, 8]
    reasons = [reason for _, reason in bad]
    assert reasons[0].startswith("amt: 'abc' is not a number")
    assert reasons[1].startswith("trans_date_trans_time: '2019-13-07 13:04:46' does not match")
    assert reasons[2].startswith("lat: ") and "beyond ±90" in reasons[2]
    assert reasons[3] == "cc_num: missing"
    assert reasons[4].startswith("is_fraud: expected 0 or 1")
    assert reasons[5].startswith("dob: '30/12/1964' does not match")


def test_one_record_gets_the_same_verdict_as_its_row(reader):
    frame = _csv(reader, GOOD, GOOD.replace("83.03", "abc"))
    good, _ = reader.frame(frame)
    rows = frame.to_dict("records")
    record = reader.record(rows[0])
    for key, value in good.iloc[0].items():
        expected = record[key]
        if isinstance(expected, float) and math.isnan(expected):
            assert pd.isna(value), key
        else:
            assert value == expected, key
    with pytest.raises(InvalidRecord, match="amt: 'abc' is not a number"):
        reader.record(rows[1])


def test_a_file_without_a_configured_column_lists_what_it_has(reader):
    frame = _csv(reader, GOOD).drop(columns=["amt"])
    with pytest.raises(InvalidRecord, match="columns missing: amt .*the file has: trans_date"):
        reader.frame(frame)


def test_epoch_milliseconds_and_a_local_time_zone(tmp_path):
    config = tmp_path / "c.toml"
    base = (ROOT / "configs" / "handbook.toml").read_text()
    config.write_text(
        base.replace(
            'timestamp = { field = "TX_DATETIME", format = "%Y-%m-%d %H:%M:%S", timezone = "UTC" }',
            'timestamp = { field = "TX_DATETIME", format = "%Y-%m-%d %H:%M:%S", '
            'timezone = "Europe/Paris" }',
        )
    )
    paris = SourceReader(load(config))
    record = {
        "TRANSACTION_ID": 1,
        "CUSTOMER_ID": 2,
        "TERMINAL_ID": 3,
        "TX_AMOUNT": 1.5,
        "TX_DATETIME": "2018-04-01 12:00:00",
    }
    assert paris.record(record)["ts"] == 1522576800  # 10:00 UTC (CEST is UTC+2)
    assert paris.record(record)["transaction_id"] == "1"
    ms = tmp_path / "ms.toml"
    ms.write_text(
        base.replace('format = "%Y-%m-%d %H:%M:%S", timezone = "UTC"', 'format = "epoch_ms"')
    )
    record["TX_DATETIME"] = 1522576800123
    assert SourceReader(load(ms)).record(record)["ts"] == 1522576800


def test_the_sparkov_slice_reads_whole(reader, sparkov_slice):
    frame = pd.read_csv(sparkov_slice, dtype=reader.csv_dtypes())
    good, bad = reader.frame(frame)
    assert bad == [] and len(good) == 13_614
    assert good["card"].nunique() == 908 and int(good["label"].sum()) == 172
    assert good["card"].str.len().max() == 19


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1)).map(
            lambda moment: moment.strftime("%Y-%m-%d %H:%M:%S")
        ),
        st.text(alphabet="0123456789-: T+Z.", min_size=15, max_size=21),
    )
)
def test_the_fast_timestamp_path_reads_what_strptime_reads(text):
    """The usual format is read with fromisoformat when the text has its exact shape: the
    same moment as strptime, or the same refusal."""
    sparkov = SourceReader(load(ROOT / "configs" / "sparkov.toml"))
    stamp = sparkov.source.timestamp
    assert stamp.format == "%Y-%m-%d %H:%M:%S"
    try:
        expected = int(
            datetime.strptime(text.strip(), stamp.format).replace(tzinfo=UTC).timestamp()
        )
    except ValueError:
        expected = None
    try:
        got = sparkov._timestamp({stamp.field: text})
    except InvalidRecord:
        got = None
    assert got == expected
