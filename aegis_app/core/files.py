"""Transaction files in the simulator schema: CSV or Parquet, chosen by extension.

Two ways in, both reporting bad rows by line number (header = line 1, first data row = line 2;
a Parquet row is numbered as if it were the same data written as CSV):

- bulk, for training and evaluation: read_transactions() then validate_frame(), vectorised;
- streaming, for `aegis replay`: iter_transactions(), one row at a time through
  aegis_app.core.records.from_file_row, so a replayed row is judged exactly as a live one.

Blank lines in a CSV are skipped but counted, so line numbers match the file. A CSV row with
too many fields is a structural error (FileFormatError), not a bad row.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from aegis_app.core.records import (
    DATETIME_FORMAT,
    FILE_COLUMNS,
    MAX_AMOUNT,
    REQUIRED_FILE_COLUMNS,
    InvalidRecord,
    Transaction,
    from_file_row,
)

CSV_SUFFIXES = (".csv",)
PARQUET_SUFFIXES = (".parquet", ".pq")
# pandas' own default resolution; every frame from this module uses it.
DATETIME_DTYPE = "datetime64[us]"
FIRST_DATA_LINE = 2
DERIVED_INT_COLUMNS = ("TX_TIME_SECONDS", "TX_TIME_DAYS")
CHUNK_ROWS = 50_000


class FileFormatError(ValueError):
    """The file as a whole cannot be used: wrong extension, missing columns, not parseable."""


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        return "csv"
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    supported = ", ".join(CSV_SUFFIXES + PARQUET_SUFFIXES)
    raise FileFormatError(f"{path}: unsupported file type {suffix!r} (expected {supported})")


_READ_ERRORS = (
    pd.errors.ParserError,
    pd.errors.ParserWarning,  # raised as an error by _strict
    pd.errors.EmptyDataError,
    UnicodeDecodeError,
    pa.ArrowException,
)


T = TypeVar("T")


def _strict(read: Callable[[], T]) -> T:
    """Run a pandas CSV read with extra fields in the first row as an error, not truncated."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.ParserWarning)
        return read()


def _unreadable(path: Path, exc: Exception) -> FileFormatError:
    return FileFormatError(f"{path}: not a readable {_kind(path)} file: {exc}")


def _check_columns(columns: Any, source: object) -> None:
    missing = [c for c in REQUIRED_FILE_COLUMNS if c not in set(columns)]
    if missing:
        raise FileFormatError(f"{source}: missing required column(s): {', '.join(missing)}")


def write_transactions(df: pd.DataFrame, path: str | Path) -> None:
    """Write df as CSV or Parquet according to the extension of path (parents created)."""
    path = Path(path)
    kind = _kind(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "csv":
        df.to_csv(path, index=False, date_format=DATETIME_FORMAT)
    else:
        df.to_parquet(path, index=False)


def read_transactions(path: str | Path) -> pd.DataFrame:
    """The whole file as a frame whose index is the file line number of each row.

    TX_DATETIME is parsed (naive UTC, DATETIME_DTYPE) when every value parses; a column with a
    bad value anywhere is left as read, so that validate_frame can name the value.
    Rows are not validated here: pass the result through validate_frame before using it.
    """
    path = Path(path)
    csv = _kind(path) == "csv"
    try:
        # CSV blank lines are kept (as empty rows) so that row positions map to line numbers;
        # index_col=False: a row longer than the header must not turn into an index.
        if csv:
            df = _strict(lambda: pd.read_csv(path, skip_blank_lines=False, index_col=False))
        else:
            df = pd.read_parquet(path)
    except _READ_ERRORS as exc:
        raise _unreadable(path, exc) from None
    _check_columns(df.columns, path)
    df.index = pd.RangeIndex(FIRST_DATA_LINE, FIRST_DATA_LINE + len(df), name="line")
    if csv:
        df = df[df.notna().any(axis=1)]
    parsed, failed = _parse_datetimes(df["TX_DATETIME"])
    if not failed.any():
        df = df.assign(TX_DATETIME=parsed)
    return df


def _parse_datetimes(column: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(parsed naive-UTC values, mask of present values that did not parse)."""
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        parsed = column.dt.tz_convert("UTC").dt.tz_localize(None)
    elif pd.api.types.is_datetime64_dtype(column.dtype):
        parsed = column
    elif pd.api.types.is_numeric_dtype(column.dtype):
        parsed = pd.Series(pd.NaT, index=column.index)  # records.parse_datetime refuses numbers
    else:
        # Only text parses, as in records.parse_datetime (naive means UTC, offsets converted).
        text = column
        if column.dtype == object:  # may mix in values that are neither text nor datetimes
            text = column.where(column.map(lambda v: isinstance(v, str | datetime)))
        parsed = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
        parsed = parsed.dt.tz_localize(None)
    # records.validate keeps whole seconds.
    parsed = parsed.astype(DATETIME_DTYPE).dt.floor("s")
    return parsed, column.notna() & parsed.isna()


# One vectorised check: (column whose raw value the reason shows, failing rows, the reason).
_Check = tuple[str, pd.Series, Callable[[Any], str]]


def _as_int(value: Any) -> Any:
    """The value as records' reason shows it: an integral value has become an int by then."""
    number = float(value)
    return int(number) if math.isfinite(number) and number == int(number) else value


def _amount_checks(raw: pd.Series) -> tuple[pd.Series, list[_Check]]:
    amount = pd.to_numeric(raw, errors="coerce").astype(float)
    present = raw.notna()
    col = "TX_AMOUNT"
    return amount, [
        (col, ~present, lambda v: "tx_amount: missing"),
        (col, present & amount.isna(), lambda v: f"tx_amount: expected a number, got {v!r}"),
        (col, np.isinf(amount), lambda v: f"tx_amount: must be finite, got {float(v)}"),
        (col, amount < 0, lambda v: f"tx_amount: must not be negative, got {float(v)}"),
        (col, amount > MAX_AMOUNT, lambda v: f"tx_amount: implausibly large, got {float(v)}"),
    ]


def _datetime_reason(value: Any) -> str:
    if isinstance(value, str):
        return f"tx_datetime: cannot parse {value!r}"
    return f"tx_datetime: expected a timestamp string, got {type(value).__name__}"


def _int_checks(
    raw: pd.Series, col: str, required: bool, allowed: tuple[int, ...] | None = None
) -> tuple[pd.Series, list[_Check]]:
    """Numbers of an integer column and its checks, with records._int_field's reasons."""
    name = FILE_COLUMNS[col]
    present = raw.notna()
    if pd.api.types.is_bool_dtype(raw.dtype):
        bool_check = (col, present, lambda v: f"{name}: expected an integer, got bool")
        return raw.astype(float), [bool_check]
    numbers = pd.to_numeric(raw, errors="coerce")
    as_float = numbers.astype(float)
    if not pd.api.types.is_integer_dtype(numbers.dtype):  # integers stay exact beyond 2**53
        numbers = as_float
    integral = np.isfinite(as_float) & (as_float == np.floor(as_float))
    checks: list[_Check] = [(col, ~present, lambda v: f"{name}: missing")] if required else []
    checks += [
        (col, present & ~integral, lambda v: f"{name}: expected an integer, got {v!r}"),
        (col, numbers < 0, lambda v: f"{name}: must not be negative, got {_as_int(v)}"),
    ]
    if allowed is not None:
        expected = " or ".join(map(str, allowed))
        checks.append(
            (
                col,
                present & ~numbers.isin(allowed),
                lambda v: f"{name}: expected {expected}, got {_as_int(v)}",
            )
        )
    return numbers, checks


def validate_frame(df: pd.DataFrame) -> tuple[pd.DataFrame, list[tuple[int, str]]]:
    """Split a frame from read_transactions into (valid rows, [(line number, reason)]).

    Line numbers are the frame's index (read_transactions sets it to the file line). The
    checks and reasons follow aegis_app.core.records.validate: each row gets its first failure in
    the order validate tests them. Valid rows come back typed: integer ids, amounts rounded to
    cents, TX_DATETIME parsed; TX_FRAUD / TX_FRAUD_SCENARIO are nullable Int64 when some valid
    rows lack them; TX_TIME_SECONDS / TX_TIME_DAYS are int64 when all valid rows have them.
    """
    _check_columns(df.columns, "frame")
    amount, checks = _amount_checks(df["TX_AMOUNT"])
    parsed, unparsed = _parse_datetimes(df["TX_DATETIME"])
    checks += [
        ("TX_DATETIME", df["TX_DATETIME"].isna(), lambda v: "tx_datetime: missing"),
        ("TX_DATETIME", unparsed, _datetime_reason),
    ]
    integers: dict[str, pd.Series] = {}
    for col, required, allowed in (
        ("TX_FRAUD", False, (0, 1)),
        ("TRANSACTION_ID", True, None),
        ("CUSTOMER_ID", True, None),
        ("TERMINAL_ID", True, None),
        ("TX_FRAUD_SCENARIO", False, None),
    ):
        if col in df.columns:
            integers[col], col_checks = _int_checks(df[col], col, required, allowed)
            checks += col_checks

    # Positional masks: the index (line numbers) need not be unique, e.g. after a concat.
    bad = np.zeros(len(df), dtype=bool)
    reasons = np.empty(len(df), dtype=object)
    for col, failing, reason in checks:
        new = failing.to_numpy(dtype=bool, na_value=False) & ~bad
        if new.any():  # bad rows are few: build their messages one by one
            reasons[new] = [reason(v) for v in df[col][new].tolist()]
            bad |= new
    errors = [(int(line), text) for line, text in zip(df.index[bad], reasons[bad], strict=True)]

    good = df[~bad].copy()
    good["TX_AMOUNT"] = amount[~bad].round(2)
    good["TX_DATETIME"] = parsed[~bad]
    for col, numbers in integers.items():
        kept = numbers[~bad]
        good[col] = kept.astype("Int64" if kept.isna().any() else np.int64)
    # Not checked by records, but typed too when clean (a CSV blank line makes them float).
    for col in DERIVED_INT_COLUMNS:
        if col in good.columns:
            values = pd.to_numeric(good[col], errors="coerce")
            if (np.isfinite(values) & (values == np.floor(values))).all():
                good[col] = values.astype(np.int64)
    return good, errors


def _records(chunk: pd.DataFrame) -> Iterator[dict[str, Any]]:
    """Rows as dicts, missing values (NaN/NaT) as None so raw rows are JSON-friendly."""
    columns = chunk.columns.tolist()
    values = [chunk[c].astype(object).where(chunk[c].notna(), None).tolist() for c in columns]
    return (dict(zip(columns, row, strict=True)) for row in zip(*values, strict=True))


def _chunk_rows(
    chunks: Iterable[pd.DataFrame], skip_blank: bool
) -> Iterator[tuple[int, dict[str, Any]]]:
    line = FIRST_DATA_LINE
    for chunk in chunks:
        blank = chunk.isna().all(axis=1).tolist() if skip_blank else [False] * len(chunk)
        for is_blank, row in zip(blank, _records(chunk), strict=True):
            if not is_blank:
                yield line, row
            line += 1


def _csv_chunks(path: Path) -> Iterator[pd.DataFrame]:
    # Text as written, so one bad value cannot change how the rest of its chunk is read.
    reader = pd.read_csv(
        path, dtype=str, skip_blank_lines=False, index_col=False, chunksize=CHUNK_ROWS
    )
    with reader:
        while True:
            try:
                chunk = _strict(lambda: next(reader, None))
            except _READ_ERRORS as exc:
                raise _unreadable(path, exc) from None
            if chunk is None:
                return
            yield chunk


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _parquet_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    line = FIRST_DATA_LINE
    for batch in pq.ParquetFile(path).iter_batches(batch_size=CHUNK_ROWS):
        for row in batch.to_pylist():
            # Arrow nulls are already None; a float NaN is pandas' way of writing one.
            yield line, {k: None if _is_nan(v) else v for k, v in row.items()}
            line += 1


def _validated(
    rows: Iterator[tuple[int, dict[str, Any]]],
) -> Iterator[tuple[int, Transaction | InvalidRecord, dict[str, Any]]]:
    for line, row in rows:
        try:
            record: Transaction | InvalidRecord = from_file_row(row)
        except InvalidRecord as exc:
            record = exc
        yield line, record, row


def iter_transactions(
    path: str | Path,
) -> Iterator[tuple[int, Transaction | InvalidRecord, dict[str, Any]]]:
    """Stream (line number, Transaction or the InvalidRecord saying why not, raw row).

    Reads CHUNK_ROWS at a time, so memory does not grow with the file. The file type and the
    header are checked now, at the call (FileFormatError), not at the first row.
    """
    path = Path(path)
    csv = _kind(path) == "csv"
    try:
        columns = pd.read_csv(path, nrows=0).columns if csv else pq.read_schema(path).names
    except _READ_ERRORS as exc:
        raise _unreadable(path, exc) from None
    _check_columns(columns, path)
    rows = _chunk_rows(_csv_chunks(path), skip_blank=True) if csv else _parquet_rows(path)
    return _validated(rows)


def iter_frame(
    df: pd.DataFrame,
) -> Iterator[tuple[int, Transaction | InvalidRecord, dict[str, Any]]]:
    """As iter_transactions, for a frame in the file schema (e.g. fresh from the simulator).

    Line numbers are those the rows would have in a CSV of the frame.
    """
    _check_columns(df.columns, "frame")
    chunks = (df.iloc[start : start + CHUNK_ROWS] for start in range(0, len(df), CHUNK_ROWS))
    return _validated(_chunk_rows(chunks, skip_blank=False))


def count_rows(path: str | Path) -> int:
    """How many rows iter_transactions will yield, for a progress bar's total.

    Cheap: Parquet metadata, or a count of non-blank CSV lines (so a line of bare commas, which
    iter_transactions skips as blank, is counted here).
    """
    path = Path(path)
    if _kind(path) == "parquet":
        try:
            return pq.ParquetFile(path).metadata.num_rows
        except _READ_ERRORS as exc:
            raise _unreadable(path, exc) from None
    with path.open("rb") as lines:
        return max(sum(1 for line in lines if line.strip()) - 1, 0)  # minus the header
