"""Reading the user's records, in the schema their config declares, into normalised ones.

A normalised record (a dict in the stream, a DataFrame row in batch) is what the feature
engine (tables/engine) and everything after it read, whatever the source looked like:

    transaction_id, card, merchant   str (hashed PANs, 19-digit numbers, hex: kept as text)
    amount                           float, finite, 0 <= amount <= 1e9
    ts                               int, epoch seconds UTC
    label                            0 / 1, or None (NaN in a frame) when not known
    <categorical field>              str, or None
    <numeric field>                  float, or NaN
    <boolean field>                  1.0 / 0.0, or NaN
    <date field>                     int epoch seconds (midnight UTC), or None
    <latlon field> NAME              NAME.lat, NAME.lon floats, or NaN

A record that does not fit its declared types is refused with the column and the reason
(:class:`InvalidRecord`, which the stream dead-letters); in a file, with its line number.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from aegis_app.core.config import Config
from aegis_app.core.records import MAX_AMOUNT, InvalidRecord

MAX_ID_CHARS = 256
TRUE_TEXT = ("1", "true", "yes", "y", "t")
FALSE_TEXT = ("0", "false", "no", "n", "f")
FIRST_DATA_LINE = 2  # a CSV's line 1 is its header
ISO_SECONDS = "%Y-%m-%d %H:%M:%S"  # the timestamp format most schemas declare


class SourceReader:
    """Normalises records of the source a config declares."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.source = config.source
        self._zone = ZoneInfo(self.source.timestamp.timezone)

    # ------------------------------------------------------------------ one record

    def record(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """The normalised record of one raw record, or InvalidRecord naming the column."""
        if not isinstance(raw, Mapping):
            raise InvalidRecord(f"record: expected a mapping, got {type(raw).__name__}")
        src = self.source
        out: dict[str, Any] = {
            "transaction_id": _id(raw, src.transaction_id),
            "card": _id(raw, src.card),
            "merchant": _id(raw, src.merchant),
            "amount": _amount(raw, src.amount),
            "ts": self._timestamp(raw),
            "label": _label(raw, src.label) if src.label else None,
        }
        for name, kind in src.fields.items():
            if kind == "latlon":
                lat, lon = src.pairs[name]
                out[f"{name}.lat"] = _coordinate(raw, lat, 90.0)
                out[f"{name}.lon"] = _coordinate(raw, lon, 180.0)
            elif kind == "date":
                out[name] = _date(raw, name, src.date_formats[name])
            elif kind == "numeric":
                out[name] = _numeric(raw, name)
            elif kind == "boolean":
                out[name] = _boolean(raw, name)
            else:
                out[name] = _text(raw, name)
        return out

    def _timestamp(self, raw: Mapping[str, Any]) -> int:
        stamp = self.source.timestamp
        value = raw.get(stamp.field)
        if _missing(value):
            raise InvalidRecord(f"{stamp.field}: missing")
        if stamp.format in ("epoch_s", "epoch_ms"):
            seconds = _finite(value, stamp.field)
            return int(seconds // 1000 if stamp.format == "epoch_ms" else seconds)
        text = str(value).strip()
        try:
            if stamp.format == ISO_SECONDS and _iso_seconds_shape(text):
                # The usual format: fromisoformat (C) reads exactly these 19 characters the
                # same as strptime, ~10x faster; other shapes still go through strptime.
                try:
                    moment = datetime.fromisoformat(text)
                except ValueError:
                    moment = datetime.strptime(text, stamp.format)
            else:
                moment = datetime.strptime(text, stamp.format)
        except ValueError:
            raise InvalidRecord(
                f"{stamp.field}: {value!r} does not match the format {stamp.format!r}"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=self._zone)
        return int(moment.timestamp())

    # ------------------------------------------------------------------ a frame

    def read_file(self, path: str | Path) -> tuple[pd.DataFrame, list[tuple[int, str]]]:
        """A CSV (optionally gzipped) or Parquet file's normalised rows, and (line, reason)
        of each row that does not fit (CSV lines; for Parquet, row number + 2)."""
        path = Path(path)
        name = path.name.lower()
        try:
            if name.endswith((".parquet", ".pq")):
                raw = pd.read_parquet(path)
            elif name.endswith((".csv", ".csv.gz")):
                raw = pd.read_csv(path, dtype=self.csv_dtypes(), low_memory=False)
            else:
                raise InvalidRecord(f"{path}: expected a .csv, .csv.gz or .parquet file")
        except (OSError, ValueError) as exc:
            if isinstance(exc, InvalidRecord):
                raise
            raise InvalidRecord(f"{path}: cannot read it ({exc})") from None
        return self.frame(raw)

    def missing_columns(self, columns: Any) -> list[str]:
        """Configured columns a file lacks (the label may be absent: no labels known)."""
        have = set(columns)
        label = self.source.label
        return [c for c in self.source.columns() if c not in have and c != label]

    def csv_dtypes(self) -> dict[str, type]:
        """pandas.read_csv dtypes that keep ids and categories as text (a 19-digit card
        number does not survive a float, and leading zeros matter)."""
        src = self.source
        text = [src.transaction_id, src.card, src.merchant]
        text += [n for n, kind in src.fields.items() if kind == "categorical"]
        return dict.fromkeys(text, str)

    def frame(
        self, df: pd.DataFrame, first_line: int = FIRST_DATA_LINE
    ) -> tuple[pd.DataFrame, list[tuple[int, str]]]:
        """The normalised frame of the rows that fit their types, and (line, reason) for
        each row that does not (`first_line`: the file line of the frame's first row; a
        CSV's header is line 1). Vectorised per column."""
        missing = self.missing_columns(df.columns)
        if missing:
            raise InvalidRecord(
                f"columns missing: {', '.join(missing)} (the file has: "
                f"{', '.join(map(str, df.columns))})"
            )
        src = self.source
        reasons = pd.Series(None, index=df.index, dtype=object)

        def refuse(mask: pd.Series, column: str, why: str | Callable[[Any], str]) -> None:
            """Record the first reason of each row `mask` selects."""
            fresh = mask.fillna(False).astype(bool) & reasons.isna()
            if fresh.any():
                values = df.loc[fresh, column]
                reasons[fresh] = [f"{column}: {why(v) if callable(why) else why}" for v in values]

        out = pd.DataFrame(index=df.index)
        for role in ("transaction_id", "card", "merchant"):
            column = getattr(src, role)
            values = _id_column(df[column])
            refuse(values.isna(), column, "missing")
            refuse(
                values.str.len() > MAX_ID_CHARS, column, f"longer than {MAX_ID_CHARS} characters"
            )
            out[role] = values
        amount = pd.to_numeric(df[src.amount], errors="coerce")
        refuse(df[src.amount].isna(), src.amount, "missing")
        refuse(amount.isna(), src.amount, lambda v: f"{v!r} is not a number")
        bad_amount = ~np.isfinite(amount) | (amount < 0) | (amount > MAX_AMOUNT)
        refuse(bad_amount & amount.notna(), src.amount, lambda v: f"{v!r} is not in 0 .. 1e9")
        out["amount"] = amount.astype(float)
        ts = self._timestamp_column(df[src.timestamp.field])
        refuse(ts.isna(), src.timestamp.field, self._timestamp_reason)
        out["ts"] = ts
        if src.label and src.label in df:
            label = pd.to_numeric(df[src.label], errors="coerce")
            bad = df[src.label].notna() & ~label.isin([0, 1])
            refuse(bad, src.label, lambda v: f"expected 0 or 1, got {v!r}")
            out["label"] = label.where(label.isin([0, 1])).astype(float)
        else:
            out["label"] = np.nan
        for name, kind in src.fields.items():
            if kind == "latlon":
                for column, part, limit in zip(src.pairs[name], ("lat", "lon"), (90.0, 180.0)):
                    value = pd.to_numeric(df[column], errors="coerce")
                    refuse(
                        df[column].notna() & value.isna(),
                        column,
                        lambda v: f"{v!r} is not a number",
                    )
                    refuse(
                        value.abs() > limit,
                        column,
                        lambda v, lim=limit: f"{v!r} is beyond ±{lim:g}",
                    )
                    out[f"{name}.{part}"] = value.astype(float)
            elif kind == "numeric":
                value = pd.to_numeric(df[name], errors="coerce")
                refuse(df[name].notna() & value.isna(), name, lambda v: f"{v!r} is not a number")
                out[name] = value.astype(float)
            elif kind == "boolean":
                text = df[name].astype(str).str.strip().str.lower()
                value = pd.Series(np.nan, index=df.index)
                value[text.isin(TRUE_TEXT)] = 1.0
                value[text.isin(FALSE_TEXT)] = 0.0
                refuse(df[name].notna() & value.isna(), name, lambda v: f"{v!r} is not true/false")
                out[name] = value
            elif kind == "date":
                parsed = pd.to_datetime(df[name], format=src.date_formats[name], errors="coerce")
                bad = df[name].notna() & parsed.isna()
                refuse(bad, name, lambda v, f=src.date_formats[name]: f"{v!r} does not match {f!r}")
                seconds = parsed.dt.normalize().astype("datetime64[s]").astype("int64")
                out[name] = seconds.where(parsed.notna(), None).astype(object)
            else:
                out[name] = _text_column(df[name])
        bad_rows = [
            (first_line + position, reason)
            for position, reason in enumerate(reasons)
            if isinstance(reason, str)
        ]
        good = out[reasons.isna().to_numpy()].copy()
        good["ts"] = good["ts"].astype("int64")
        return good, bad_rows

    def _timestamp_column(self, values: pd.Series) -> pd.Series:
        stamp = self.source.timestamp
        if stamp.format in ("epoch_s", "epoch_ms"):
            seconds = pd.to_numeric(values, errors="coerce")
            seconds = seconds.where(np.isfinite(seconds))
            if stamp.format == "epoch_ms":
                seconds = seconds // 1000
            return np.floor(seconds)
        parsed = pd.to_datetime(values, format=stamp.format, errors="coerce")
        if parsed.dt.tz is None:
            parsed = parsed.dt.tz_localize(stamp.timezone, ambiguous="NaT", nonexistent="NaT")
        utc = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
        seconds = utc.astype("datetime64[s]").astype("int64").astype(float)
        return seconds.where(parsed.notna())

    def _timestamp_reason(self, value: Any) -> str:
        stamp = self.source.timestamp
        if _missing(value):
            return "missing"
        if stamp.format in ("epoch_s", "epoch_ms"):
            return f"{value!r} is not a number of {stamp.format[6:] or 's'}"
        return (
            f"{value!r} does not match the format {stamp.format!r} "
            f"(or is not a valid time in {stamp.timezone})"
        )


# --------------------------------------------------------------------------- values


def _iso_seconds_shape(text: str) -> bool:
    """'YYYY-MM-DD HH:MM:SS' by its separators: fromisoformat then reads it as strptime does
    (never as a time zone or a fraction)."""
    return (
        len(text) == 19
        and text[4] == text[7] == "-"
        and text[10] == " "
        and text[13] == text[16] == ":"
    )


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value == ""


def _id(raw: Mapping[str, Any], column: str) -> str:
    value = raw.get(column)
    if _missing(value):
        raise InvalidRecord(f"{column}: missing")
    if isinstance(value, bool):
        raise InvalidRecord(f"{column}: expected an id, got {value!r}")
    if isinstance(value, float):
        if not value.is_integer():
            raise InvalidRecord(f"{column}: expected an id, got {value!r}")
        value = int(value)
    text = str(value).strip()
    if not text or len(text) > MAX_ID_CHARS:
        raise InvalidRecord(f"{column}: expected an id of 1-{MAX_ID_CHARS} characters")
    return text


def _id_column(values: pd.Series) -> pd.Series:
    if pd.api.types.is_float_dtype(values):
        whole = values.where(values == np.floor(values))
        return whole.map(lambda v: None if pd.isna(v) else str(int(v)))
    text = values.map(lambda v: None if _missing(v) else str(v).strip())
    return text.where(text != "")


def _finite(value: Any, column: str) -> float:
    if isinstance(value, bool):
        raise InvalidRecord(f"{column}: expected a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidRecord(f"{column}: {value!r} is not a number") from None
    if not math.isfinite(number):
        raise InvalidRecord(f"{column}: must be finite, got {value!r}")
    return number


def _amount(raw: Mapping[str, Any], column: str) -> float:
    value = raw.get(column)
    if _missing(value):
        raise InvalidRecord(f"{column}: missing")
    amount = _finite(value, column)
    if not 0 <= amount <= MAX_AMOUNT:
        raise InvalidRecord(f"{column}: {value!r} is not in 0 .. 1e9")
    return amount


def _label(raw: Mapping[str, Any], column: str) -> int | None:
    value = raw.get(column)
    if _missing(value):
        return None
    if isinstance(value, str):
        value = value.strip()
    try:
        label = float(value)
    except (TypeError, ValueError):
        raise InvalidRecord(f"{column}: expected 0 or 1, got {value!r}") from None
    if label not in (0.0, 1.0):
        raise InvalidRecord(f"{column}: expected 0 or 1, got {value!r}")
    return int(label)


def _numeric(raw: Mapping[str, Any], column: str) -> float:
    value = raw.get(column)
    return math.nan if _missing(value) else _finite(value, column)


def _boolean(raw: Mapping[str, Any], column: str) -> float:
    value = raw.get(column)
    if _missing(value):
        return math.nan
    text = str(value).strip().lower()
    if text in TRUE_TEXT:
        return 1.0
    if text in FALSE_TEXT:
        return 0.0
    raise InvalidRecord(f"{column}: {value!r} is not true/false")


def _text(raw: Mapping[str, Any], column: str) -> str | None:
    value = raw.get(column)
    if _missing(value):
        return None
    text = str(value)
    if len(text) > MAX_ID_CHARS:
        raise InvalidRecord(f"{column}: longer than {MAX_ID_CHARS} characters")
    return text


def _text_column(values: pd.Series) -> pd.Series:
    return values.map(lambda v: None if _missing(v) else str(v)).astype(object)


def _date(raw: Mapping[str, Any], column: str, fmt: str) -> int | None:
    value = raw.get(column)
    if _missing(value):
        return None
    try:
        day = datetime.strptime(str(value).strip(), fmt).date()
    except ValueError:
        raise InvalidRecord(f"{column}: {value!r} does not match {fmt!r}") from None
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def _coordinate(raw: Mapping[str, Any], column: str, limit: float) -> float:
    value = raw.get(column)
    if _missing(value):
        return math.nan
    number = _finite(value, column)
    if abs(number) > limit:
        raise InvalidRecord(f"{column}: {value!r} is beyond ±{limit:g}")
    return number
