"""Transaction files in the schema a config declares: CSV (optionally gzipped) or Parquet,
chosen by extension.

- streaming, for `aegis replay` and the harness: iter_transactions() / iter_frame(), one row
  at a time through the config's SourceReader, so a replayed row is judged exactly as a live
  one (the bulk path is SourceReader.read_file);
- write_transactions() / read_transactions(): a frame to and from a file, as written.

Bad rows are reported by line number (header = line 1, first data row = line 2; a Parquet
row is numbered as if it were the same data written as CSV). Blank lines in a CSV are
skipped but counted, so line numbers match the file. A CSV row with too many fields is a
structural error (FileFormatError), not a bad row.

Without a config, the default preset (configs/handbook.toml) is used: the schema
`aegis generate` writes.
"""

from __future__ import annotations

import gzip
import math
import warnings
import zlib
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from aegis_app.core import config as configs
from aegis_app.core.config import Config
from aegis_app.core.records import DATETIME_FORMAT, InvalidRecord
from aegis_app.core.source import SourceReader

CSV_SUFFIXES = (".csv", ".csv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")
FIRST_DATA_LINE = 2
CHUNK_ROWS = 50_000

# (line number, normalised record or the InvalidRecord saying why not, raw row)
Row = tuple[int, dict[str, Any] | InvalidRecord, dict[str, Any]]


class FileFormatError(ValueError):
    """The file as a whole cannot be used: wrong extension, missing columns, not parseable."""


@cache
def simulator_config() -> Config:
    """The default preset: the schema the simulator (`aegis generate`) writes."""
    return configs.load(configs.resolve(None))


def _kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    supported = ", ".join(CSV_SUFFIXES + PARQUET_SUFFIXES)
    raise FileFormatError(f"{path}: unsupported file type {path.suffix!r} (expected {supported})")


_READ_ERRORS = (
    pd.errors.ParserError,
    pd.errors.ParserWarning,  # raised as an error by _strict
    pd.errors.EmptyDataError,
    UnicodeDecodeError,
    gzip.BadGzipFile,
    EOFError,  # a truncated .gz
    zlib.error,
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


def _check_columns(reader: SourceReader, columns: Any, source: object) -> None:
    missing = reader.missing_columns(columns)
    if missing:
        raise FileFormatError(f"{source}: missing required column(s): {', '.join(missing)}")


def write_transactions(df: pd.DataFrame, path: str | Path) -> None:
    """Write df as CSV (.csv, .csv.gz) or Parquet according to the extension of path
    (parents created); datetimes in a CSV as 'YYYY-MM-DD HH:MM:SS'."""
    path = Path(path)
    kind = _kind(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "csv":
        df.to_csv(path, index=False, date_format=DATETIME_FORMAT)
    else:
        df.to_parquet(path, index=False)


def read_transactions(path: str | Path) -> pd.DataFrame:
    """The whole file as read (pandas' own types; no schema, no checks), indexed by the file
    line number of each row. For the checked, normalised rows: SourceReader.read_file."""
    path = Path(path)
    try:
        if _kind(path) == "csv":
            # index_col=False: a row longer than the header must not turn into an index.
            df = _strict(lambda: pd.read_csv(path, index_col=False))
        else:
            df = pd.read_parquet(path)
    except _READ_ERRORS as exc:
        raise _unreadable(path, exc) from None
    df.index = pd.RangeIndex(FIRST_DATA_LINE, FIRST_DATA_LINE + len(df), name="line")
    return df


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
    # Text as written, so one bad value cannot change how the rest of its chunk is read
    # (and a 19-digit card number stays exact).
    try:
        reader = pd.read_csv(
            path, dtype=str, skip_blank_lines=False, index_col=False, chunksize=CHUNK_ROWS
        )
    except _READ_ERRORS as exc:
        raise _unreadable(path, exc) from None
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


class _TimesAsWritten:
    """Typed times (a Parquet timestamp column, a frame's datetimes) as the text or number
    the config's formats read, so a typed file is judged, and sent, as its CSV would be."""

    def __init__(self, config: Config) -> None:
        src = config.source
        stamp = src.timestamp
        self._stamp = (stamp.field, stamp.format, ZoneInfo(stamp.timezone))
        self._dates = dict(src.date_formats)

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        column, fmt, zone = self._stamp
        value = row.get(column)
        if isinstance(value, datetime):
            row[column] = _stamp_as_written(value, fmt, zone)
        for column, fmt in self._dates.items():
            value = row.get(column)
            if isinstance(value, date):
                row[column] = value.strftime(fmt)
        return row


def _stamp_as_written(value: datetime, fmt: str, zone: ZoneInfo) -> str | int:
    if fmt in ("epoch_s", "epoch_ms"):
        seconds = (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
        return int(seconds * 1000) if fmt == "epoch_ms" else int(seconds)
    if value.tzinfo is not None:  # naive values are in the configured zone already
        value = value.astimezone(zone)
    return value.strftime(fmt)


def _checked(rows: Iterator[tuple[int, dict[str, Any]]], config: Config) -> Iterator[Row]:
    reader = SourceReader(config)
    as_written = _TimesAsWritten(config)
    for line, raw in rows:
        raw = as_written(raw)
        try:
            record: dict[str, Any] | InvalidRecord = reader.record(raw)
        except InvalidRecord as exc:
            record = exc
        yield line, record, raw


def iter_transactions(path: str | Path, config: Config | None = None) -> Iterator[Row]:
    """Stream (line number, normalised record or the InvalidRecord saying why not, raw row)
    of a file in the config's schema.

    Reads CHUNK_ROWS at a time, so memory does not grow with the file. The file type and the
    header are checked now, at the call (FileFormatError), not at the first row.
    """
    config = config if config is not None else simulator_config()
    path = Path(path)
    csv = _kind(path) == "csv"
    try:
        columns = pd.read_csv(path, nrows=0).columns if csv else pq.read_schema(path).names
    except _READ_ERRORS as exc:
        raise _unreadable(path, exc) from None
    _check_columns(SourceReader(config), columns, path)
    rows = _chunk_rows(_csv_chunks(path), skip_blank=True) if csv else _parquet_rows(path)
    return _checked(rows, config)


def iter_frame(df: pd.DataFrame, config: Config | None = None) -> Iterator[Row]:
    """As iter_transactions, for a frame in the config's schema (e.g. fresh from the
    simulator). Line numbers are those the rows would have in a CSV of the frame."""
    config = config if config is not None else simulator_config()
    _check_columns(SourceReader(config), df.columns, "frame")
    chunks = (df.iloc[start : start + CHUNK_ROWS] for start in range(0, len(df), CHUNK_ROWS))
    return _checked(_chunk_rows(chunks, skip_blank=False), config)


def good_rows(rows: Iterable[Row]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(normalised record, raw row) of the rows that fit (bad rows are dropped)."""
    for _, record, raw in rows:
        if not isinstance(record, InvalidRecord):
            yield record, raw


def count_rows(path: str | Path) -> int:
    """How many rows iter_transactions will yield, for a progress bar's total.

    Cheap: Parquet metadata, or a count of non-blank CSV lines (so a line of bare commas, which
    iter_transactions skips as blank, is counted here; a quoted field spanning lines counts
    each line).
    """
    path = Path(path)
    if _kind(path) == "parquet":
        try:
            return pq.ParquetFile(path).metadata.num_rows
        except _READ_ERRORS as exc:
            raise _unreadable(path, exc) from None
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as lines:
            return max(sum(1 for line in lines if line.strip()) - 1, 0)  # minus the header
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise _unreadable(path, exc) from None
