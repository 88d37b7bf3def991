"""Per-transaction kinds: read off the transaction alone (its time and fields), vectorised.

The stream calls each function on one-element columns, the batch on whole columns.
Calendar kinds are in UTC.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from aegis_app.core.config import Feature
from aegis_app.core.timerules import DAY
from tables.engine.keys import text_of
from tables.engine.plan import RecordError, column_of

HOUR = 3600
YEAR = 365.25 * DAY
EARTH_RADIUS_KM = 6371.0088  # mean Earth radius (IUGG)
THURSDAY = 3  # 1970-01-01, with Monday = 0
SMALL = 16  # columns this short (the stream's) are converted value by value

# A column source: normalised column name -> values (numeric as float64, text as objects).
Columns = Mapping[str, np.ndarray]


def _hour(ts: np.ndarray) -> np.ndarray:
    return (ts % DAY) // HOUR


def _weekday(ts: np.ndarray) -> np.ndarray:
    return (ts // DAY + THURSDAY) % 7


def value(feature: Feature, columns: Columns, ts: np.ndarray) -> np.ndarray:
    return _float_column(columns, column_of(feature.field))


def hour(feature: Feature, columns: Columns, ts: np.ndarray) -> np.ndarray:
    return _hour(ts).astype(np.float64)


def weekend(feature: Feature, columns: Columns, ts: np.ndarray) -> np.ndarray:
    return (_weekday(ts) >= 5).astype(np.float64)


def night(feature: Feature, columns: Columns, ts: np.ndarray) -> np.ndarray:
    return (_hour(ts) <= feature.night_end_hour).astype(np.float64)


def day_of_week(feature: Feature, columns: Columns, ts: np.ndarray) -> np.ndarray:
    return _weekday(ts).astype(np.float64)


def category(feature: Feature, columns: Columns, ts: np.ndarray) -> np.ndarray:
    """The value as text for the models' categorical handling (a boolean: '0' or '1')."""
    values = np.asarray(columns[column_of(feature.field)], dtype=object)
    if values.size <= SMALL:
        return np.array([_category_text(v) for v in values] + [None], dtype=object)[:-1]
    codes, uniques = pd.factorize(values)
    table = np.array([_category_text(u) for u in uniques] + [None], dtype=object)
    return table[codes]


def _category_text(value: object) -> str | None:
    if isinstance(value, float) and value == value:
        return str(int(value)) if value.is_integer() else repr(value)
    return text_of(value)


def distance(feature: Feature, columns: Columns, ts: np.ndarray) -> np.ndarray:
    """Great-circle (haversine) km between two latitude/longitude fields; NaN when missing."""
    lat1, lon1, lat2, lon2 = (
        np.radians(_float_column(columns, f"{name}.{axis}"))
        for name in (feature.field, feature.other)
        for axis in ("lat", "lon")
    )
    a = (
        np.sin((lat2 - lat1) / 2) ** 2
        + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def age(feature: Feature, columns: Columns, ts: np.ndarray) -> np.ndarray:
    """Years from the date field to the transaction; NaN when the date is missing."""
    born = _float_column(columns, column_of(feature.field))
    return (ts - born) / YEAR


def _float_column(columns: Columns, name: str) -> np.ndarray:
    """A numeric or date column as float64 (None and NaN: missing)."""
    try:
        return np.asarray(columns[name], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise RecordError(f"{name!r} must be numeric ({exc})") from None


KINDS: dict[str, Callable[[Feature, Columns, np.ndarray], np.ndarray]] = {
    "value": value,
    "hour": hour,
    "weekend": weekend,
    "night": night,
    "day_of_week": day_of_week,
    "category": category,
    "distance": distance,
    "age": age,
}


def evaluate(
    features: tuple[Feature, ...], columns: Columns, ts: np.ndarray
) -> dict[str, np.ndarray]:
    return {f.name: KINDS[f.kind](f, columns, ts) for f in features}
