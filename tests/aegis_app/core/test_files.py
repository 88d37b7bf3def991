from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aegis_app.core.files import (
    FileFormatError,
    count_rows,
    iter_frame,
    iter_transactions,
    read_transactions,
    validate_frame,
    write_transactions,
)
from aegis_app.core.records import InvalidRecord, Transaction
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
7,2018-04-01 00:11:30,568,-3,1.50,690,0,0,0
8,2018-04-01 00:12:30,568,3,1.50,750,0,2,0
9,2018-04-01T02:12:30+02:00,568,3,1.505,750,0,1,2
"""
BAD_CSV_ERRORS = [
    (3, "tx_amount: expected a number, got 'abc'"),
    (4, "tx_amount: must not be negative, got -5.0"),
    (6, "tx_datetime: cannot parse 'not a date'"),
    (7, "customer_id: missing"),
    (8, "tx_amount: must be finite, got inf"),
    (9, "tx_amount: missing"),
    (10, "terminal_id: must not be negative, got -3"),
    (11, "tx_fraud: expected 0 or 1, got 2"),
]


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return generate(customers=200, terminals=400, days=10, seed=2)


@pytest.fixture
def bad_csv(tmp_path: Path) -> Path:
    path = tmp_path / "bad.csv"
    path.write_text(BAD_CSV)
    return path


def _invalid(path: Path) -> list[tuple[int, str]]:
    return [(n, str(r)) for n, r, _ in iter_transactions(path) if isinstance(r, InvalidRecord)]


@pytest.mark.parametrize("name", ["tx.csv", "tx.parquet", "tx.pq"])
def test_roundtrip(frame: pd.DataFrame, tmp_path: Path, name: str) -> None:
    path = tmp_path / "nested" / name
    write_transactions(frame, path)
    read = read_transactions(path)
    assert read.index.name == "line"
    assert read.index[0] == 2
    good, errors = validate_frame(read)
    assert errors == []
    pd.testing.assert_frame_equal(good.reset_index(drop=True), frame)
    pd.testing.assert_frame_equal(read.reset_index(drop=True), frame)
    assert count_rows(path) == len(frame)


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


def test_bad_csv_rows_are_reported_by_line(bad_csv: Path) -> None:
    good, errors = validate_frame(read_transactions(bad_csv))
    assert errors == BAD_CSV_ERRORS
    assert good.index.tolist() == [2, 12]
    assert good["TRANSACTION_ID"].tolist() == [0, 9]
    # Offsets are converted to UTC and amounts rounded, as records.validate does.
    assert good["TX_DATETIME"].iloc[1] == pd.Timestamp("2018-04-01 00:12:30")
    assert good["TX_AMOUNT"].iloc[1] == pytest.approx(1.5)
    for column in ("TRANSACTION_ID", "CUSTOMER_ID", "TX_TIME_SECONDS", "TX_FRAUD"):
        assert good[column].dtype == np.int64, column


def test_streaming_agrees_with_bulk(bad_csv: Path) -> None:
    rows = list(iter_transactions(bad_csv))
    assert [line for line, _, _ in rows] == [2, 3, 4, 6, 7, 8, 9, 10, 11, 12]
    assert _invalid(bad_csv) == BAD_CSV_ERRORS
    line, record, raw = rows[-1]
    assert isinstance(record, Transaction)
    assert record.tx_datetime == "2018-04-01 00:12:30"
    assert raw["TX_DATETIME"] == "2018-04-01T02:12:30+02:00"
    raw_by_line = {line: raw for line, _, raw in rows}
    assert raw_by_line[7]["CUSTOMER_ID"] is None  # missing cells are None in the raw row


def test_bad_parquet_rows_are_reported_by_row(frame: pd.DataFrame, tmp_path: Path) -> None:
    bad = frame.head(6).astype({"CUSTOMER_ID": "Int64", "TX_DATETIME": "str"})
    bad.loc[1, "TX_AMOUNT"] = np.nan
    bad.loc[2, "TX_AMOUNT"] = -1.0
    bad.loc[3, "CUSTOMER_ID"] = pd.NA
    bad.loc[4, "TX_DATETIME"] = "yesterday"
    path = tmp_path / "bad.parquet"
    write_transactions(bad, path)
    expected = [
        (3, "tx_amount: missing"),
        (4, "tx_amount: must not be negative, got -1.0"),
        (5, "customer_id: missing"),
        (6, "tx_datetime: cannot parse 'yesterday'"),
    ]
    good, errors = validate_frame(read_transactions(path))
    assert errors == expected
    assert good.index.tolist() == [2, 7]
    assert good["CUSTOMER_ID"].dtype == np.int64
    assert _invalid(path) == expected


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_missing_column_is_a_file_error(frame: pd.DataFrame, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"tx{suffix}"
    write_transactions(frame.drop(columns=["TERMINAL_ID", "TX_AMOUNT"]), path)
    with pytest.raises(FileFormatError, match="missing required column.*TERMINAL_ID, TX_AMOUNT"):
        read_transactions(path)
    with pytest.raises(FileFormatError, match="TERMINAL_ID"):
        iter_transactions(path)  # at the call, before any row is read
    with pytest.raises(FileFormatError, match="TX_AMOUNT"):
        validate_frame(frame.drop(columns=["TX_AMOUNT"]))


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


def test_optional_columns_may_be_empty(tmp_path: Path) -> None:
    path = tmp_path / "partial.csv"
    path.write_text(
        "TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,TX_FRAUD\n"
        "0,2018-04-01 00:00:31,1,2,3.0,1\n"
        "1,2018-04-01 00:00:32,1,2,3.0,\n"
    )
    good, errors = validate_frame(read_transactions(path))
    assert errors == []
    assert good["TX_FRAUD"].dtype == "Int64"
    assert good["TX_FRAUD"].isna().tolist() == [False, True]


def test_line_numbers_need_not_be_unique(bad_csv: Path) -> None:
    read = read_transactions(bad_csv)
    _, errors = validate_frame(pd.concat([read, read]))
    assert errors == BAD_CSV_ERRORS + BAD_CSV_ERRORS


def test_iter_frame_numbers_rows_as_a_csv_would(frame: pd.DataFrame) -> None:
    rows = list(iter_frame(frame))
    assert [line for line, _, _ in rows] == list(range(2, len(frame) + 2))
    first = rows[0][1]
    assert isinstance(first, Transaction)
    assert first.transaction_id == 0
    assert first.tx_datetime == frame["TX_DATETIME"].iloc[0].strftime("%Y-%m-%d %H:%M:%S")
    assert all(isinstance(record, Transaction) for _, record, _ in rows)


def test_count_rows_skips_header_and_blank_lines(bad_csv: Path) -> None:
    assert count_rows(bad_csv) == 10
