import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aegis_app.core import config as configs
from aegis_app.core.files import (
    FileFormatError,
    count_rows,
    iter_frame,
    iter_transactions,
    read_transactions,
    simulator_config,
    write_transactions,
)
from aegis_app.core.records import InvalidRecord
from aegis_app.core.source import SourceReader
from aegis_app.harness.simulator import generate

HEADER = (
    "TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,"
    "TX_TIME_SECONDS,TX_TIME_DAYS,TX_FRAUD,TX_FRAUD_SCENARIO"
)
# Line 1 is the header; line 5 is blank (skipped, but counted).
BAD_CSV = f"""{HEADER}
0,2018-04-01 00:00:31,596,3156,57.16,31,0,0,0
1,2018-04-01 00:02:10,4961,3412,abc,130,0,0,0
2,2018-04-01 00:07:56,2,1365,-5,476,0,0,0

3,not a date,4128,8737,10.00,479,0,0,0
4,2018-04-01 00:09:29,,8737,10.00,569,0,0,0
5,2018-04-01 00:10:34,927,9906,inf,634,0,0,0
6,2018-04-01 00:10:45,568,8803,,645,0,0,0
7,2018-04-01 00:11:30,568,S-3,1.50,690,0,0,0
8,2018-04-01 00:12:30,568,3,1.50,750,0,2,0
9,2018-04-01 00:12:31,0568,3,1.505,750,0,1,2
"""
BAD_CSV_ERRORS = [
    (3, "TX_AMOUNT: 'abc' is not a number"),
    (4, "TX_AMOUNT: '-5' is not in 0 .. 1e9"),
    (6, "TX_DATETIME: 'not a date' does not match the format '%Y-%m-%d %H:%M:%S'"),
    (7, "CUSTOMER_ID: missing"),
    (8, "TX_AMOUNT: must be finite, got 'inf'"),
    (9, "TX_AMOUNT: missing"),
    (11, "TX_FRAUD: expected 0 or 1, got '2'"),
]
SPARKOV = Path(__file__).resolve().parents[3] / "configs" / "sparkov.toml"


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return generate(customers=200, terminals=400, days=10, seed=2)


@pytest.fixture
def bad_csv(tmp_path: Path) -> Path:
    path = tmp_path / "bad.csv"
    path.write_text(BAD_CSV)
    return path


def _invalid(path: Path, config=None) -> list[tuple[int, str]]:
    return [
        (n, str(r)) for n, r, _ in iter_transactions(path, config) if isinstance(r, InvalidRecord)
    ]


def _normalised(rows) -> pd.DataFrame:
    return pd.DataFrame([r for _, r, _ in rows if not isinstance(r, InvalidRecord)])


@pytest.mark.parametrize("name", ["tx.csv", "tx.csv.gz", "tx.parquet", "tx.pq"])
def test_roundtrip(frame: pd.DataFrame, tmp_path: Path, name: str) -> None:
    path = tmp_path / "nested" / name
    write_transactions(frame, path)
    read = read_transactions(path)
    assert read.index.name == "line"
    assert read.index[0] == 2
    assert read["TRANSACTION_ID"].tolist() == frame["TRANSACTION_ID"].tolist()
    assert count_rows(path) == len(frame)
    # Streamed rows are the bulk reader's normalised rows, whatever the file type.
    bulk, errors = SourceReader(simulator_config()).frame(frame)
    assert errors == []
    streamed = _normalised(iter_transactions(path))
    pd.testing.assert_frame_equal(
        streamed.reset_index(drop=True), bulk.reset_index(drop=True), check_dtype=False
    )


def test_csv_datetimes_are_written_plainly(frame: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "tx.csv"
    write_transactions(frame.head(1), path)
    first = path.read_text().splitlines()[1].split(",")
    assert first[1] == frame["TX_DATETIME"].iloc[0].strftime("%Y-%m-%d %H:%M:%S")


def test_unsupported_extension(frame: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "tx.json"
    with pytest.raises(FileFormatError, match="unsupported file type '.json'"):
        write_transactions(frame, path)
    path.write_text("{}")
    with pytest.raises(FileFormatError):
        read_transactions(path)
    with pytest.raises(FileFormatError):
        iter_transactions(path)


def test_bad_csv_rows_are_reported_by_line_as_the_bulk_reader_does(bad_csv: Path) -> None:
    rows = list(iter_transactions(bad_csv))
    assert [line for line, _, _ in rows] == [2, 3, 4, 6, 7, 8, 9, 10, 11, 12]
    assert _invalid(bad_csv) == BAD_CSV_ERRORS
    # The bulk reader refuses the same rows (its reasons are worded per column).
    _, bulk_errors = SourceReader(simulator_config()).frame(
        pd.read_csv(bad_csv, dtype=str).dropna(how="all").reset_index(drop=True)
    )
    assert len(bulk_errors) == len(BAD_CSV_ERRORS)
    good = {line: record for line, record, _ in rows if not isinstance(record, InvalidRecord)}
    assert sorted(good) == [2, 10, 12]
    # Ids are text as written (a leading zero is kept), amounts exact, label 0/1.
    assert good[12]["card"] == "0568"
    assert good[10]["merchant"] == "S-3"
    assert good[12]["amount"] == pytest.approx(1.505)
    assert good[12]["label"] == 1
    assert good[2]["ts"] == int(pd.Timestamp("2018-04-01 00:00:31", tz="UTC").timestamp())
    raw_by_line = {line: raw for line, _, raw in rows}
    assert raw_by_line[7]["CUSTOMER_ID"] is None  # missing cells are None in the raw row
    assert raw_by_line[12]["TX_AMOUNT"] == "1.505"  # and values are the text as written


def test_bad_parquet_rows_are_reported_by_row(frame: pd.DataFrame, tmp_path: Path) -> None:
    bad = frame.head(6).astype({"CUSTOMER_ID": "Int64", "TX_DATETIME": "str"})
    bad.loc[1, "TX_AMOUNT"] = np.nan
    bad.loc[2, "TX_AMOUNT"] = -1.0
    bad.loc[3, "CUSTOMER_ID"] = pd.NA
    bad.loc[4, "TX_DATETIME"] = "yesterday"
    path = tmp_path / "bad.parquet"
    write_transactions(bad, path)
    assert _invalid(path) == [
        (3, "TX_AMOUNT: missing"),
        (4, "TX_AMOUNT: -1.0 is not in 0 .. 1e9"),
        (5, "CUSTOMER_ID: missing"),
        (6, "TX_DATETIME: 'yesterday' does not match the format '%Y-%m-%d %H:%M:%S'"),
    ]


def test_typed_datetimes_are_read_in_the_configured_zone(tmp_path: Path) -> None:
    """A Parquet timestamp column is read as its text would be: naive values in the
    config's zone, aware ones converted to it."""
    base = tmp_path / "paris.toml"
    base.write_text(
        configs.resolve(None).read_text().replace('timezone = "UTC"', 'timezone = "Europe/Paris"')
    )
    paris = configs.load(base)
    row = {
        "TRANSACTION_ID": [1, 2],
        "TX_DATETIME": [pd.Timestamp("2018-04-01 12:00:00")] * 2,
        "CUSTOMER_ID": [1, 1],
        "TERMINAL_ID": [2, 2],
        "TX_AMOUNT": [3.0, 3.0],
    }
    naive = pd.DataFrame(row)
    aware = naive.assign(TX_DATETIME=naive["TX_DATETIME"].dt.tz_localize("UTC"))
    noon_paris = int(pd.Timestamp("2018-04-01 12:00:00", tz="Europe/Paris").timestamp())
    noon_utc = int(pd.Timestamp("2018-04-01 12:00:00", tz="UTC").timestamp())
    for df, expected in ((naive, noon_paris), (aware, noon_utc)):
        path = tmp_path / "typed.parquet"
        write_transactions(df, path)
        [(_, record, raw), _] = list(iter_transactions(path, paris))
        assert record["ts"] == expected
        assert isinstance(raw["TX_DATETIME"], str)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_missing_column_is_a_file_error(frame: pd.DataFrame, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"tx{suffix}"
    write_transactions(frame.drop(columns=["TERMINAL_ID", "TX_AMOUNT"]), path)
    with pytest.raises(FileFormatError, match="missing required column.*TERMINAL_ID, TX_AMOUNT"):
        iter_transactions(path)  # at the call, before any row is read
    with pytest.raises(FileFormatError, match="TX_AMOUNT"):
        iter_frame(frame.drop(columns=["TX_AMOUNT"]))


def test_the_label_column_may_be_absent(frame: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "unlabelled.csv"
    write_transactions(frame.drop(columns=["TX_FRAUD"]).head(5), path)
    records = [record for _, record, _ in iter_transactions(path)]
    assert [r["label"] for r in records] == [None] * 5


@pytest.mark.parametrize("long_line", [2, 3])
def test_a_row_longer_than_the_header_is_a_file_error(tmp_path: Path, long_line: int) -> None:
    rows = ["0,2018-04-01 00:00:31,1,2,3.0,31,0,0,0"] * 2
    rows[long_line - 2] += ",extra"
    path = tmp_path / "broken.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    with pytest.raises(FileFormatError, match="not a readable csv file"):
        read_transactions(path)
    with pytest.raises(FileFormatError, match="not a readable csv file"):
        list(iter_transactions(path))


def test_a_corrupt_gzip_is_a_file_error(tmp_path: Path) -> None:
    path = tmp_path / "tx.csv.gz"
    path.write_bytes(gzip.compress(f"{HEADER}\n".encode())[:-12] + b"garbage!")
    with pytest.raises(FileFormatError, match="not a readable csv file"):
        list(iter_transactions(path))


def test_iter_frame_numbers_rows_as_a_csv_would(frame: pd.DataFrame) -> None:
    rows = list(iter_frame(frame))
    assert [line for line, _, _ in rows] == list(range(2, len(frame) + 2))
    first = rows[0][1]
    assert first["transaction_id"] == "0"
    assert first["card"] == str(frame["CUSTOMER_ID"].iloc[0])
    assert first["ts"] == int(frame["TX_DATETIME"].iloc[0].tz_localize("UTC").timestamp())
    assert all(not isinstance(record, InvalidRecord) for _, record, _ in rows)


def test_another_schema_with_its_config(tmp_path: Path) -> None:
    """A file in the Sparkov schema, with its config: 19-digit card numbers stay exact,
    the extra fields are normalised, a bad date is named by its column."""
    sparkov = configs.load(SPARKOV)
    row = {
        "trans_date_trans_time": "2019-01-07 13:04:44",
        "cc_num": "4599735407877245080",
        "merchant": "fraud_Medhurst Inc",
        "category": "home",
        "amt": "83.03",
        "gender": "F",
        "state": "TN",
        "lat": "36.3846",
        "long": "-89.4649",
        "city_pop": "5577",
        "dob": "1964-12-30",
        "trans_num": "2a2420bc51233f5769d30fa9c101ff7a",
        "merch_lat": "37.322676",
        "merch_long": "-89.220738",
        "is_fraud": "0",
    }
    path = tmp_path / "sparkov.csv.gz"
    write_transactions(pd.DataFrame([row, {**row, "dob": "30/12/1964"}]), path)
    rows = list(iter_transactions(path, sparkov))
    record = rows[0][1]
    assert record["card"] == "4599735407877245080"
    assert record["home.lon"] == pytest.approx(-89.4649)
    assert record["city_pop"] == 5577.0
    assert str(rows[1][1]) == "dob: '30/12/1964' does not match '%Y-%m-%d'"
    with pytest.raises(FileFormatError, match="missing required column.*TRANSACTION_ID"):
        iter_transactions(path)  # the default config: the simulator's columns


def test_count_rows_skips_header_and_blank_lines(bad_csv: Path, tmp_path: Path) -> None:
    assert count_rows(bad_csv) == 10
    packed = tmp_path / "bad.csv.gz"
    packed.write_bytes(gzip.compress(bad_csv.read_bytes()))
    assert count_rows(packed) == 10
