"""Per-transaction kinds: calendar in UTC, values, categories, distances and ages."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest

from aegis_app.core.config import Feature
from tables.engine import RecordError, transaction

# Saturday 2024-01-06 23:30 UTC, Monday 2024-01-08 06:59 and 07:00 UTC.
SATURDAY_LATE = int(datetime(2024, 1, 6, 23, 30, tzinfo=UTC).timestamp())
MONDAY_6_59 = int(datetime(2024, 1, 8, 6, 59, tzinfo=UTC).timestamp())
MONDAY_7_00 = MONDAY_6_59 + 60
BEFORE_1970 = int(datetime(1969, 12, 28, 5, 0, tzinfo=UTC).timestamp())  # a Sunday
TIMES = np.array([SATURDAY_LATE, MONDAY_6_59, MONDAY_7_00, BEFORE_1970])


def compute(kind: str, columns: dict | None = None, **options) -> list:
    feature = Feature(name="f", kind=kind, **options)
    return transaction.KINDS[kind](feature, columns or {}, TIMES).tolist()


def test_calendar_kinds_are_utc():
    assert compute("hour") == [23.0, 6.0, 7.0, 5.0]
    assert compute("day_of_week") == [5.0, 0.0, 0.0, 6.0]
    assert compute("weekend") == [1.0, 0.0, 0.0, 1.0]
    assert compute("night") == [0.0, 1.0, 0.0, 1.0]
    assert compute("night", night_end_hour=23) == [1.0, 1.0, 1.0, 1.0]


def test_values_and_categories_pass_through():
    columns = {
        "score": np.array([1.5, math.nan, 0.0, -2.0]),
        "channel": np.array(["web", None, "pos", math.nan], dtype=object),
        "online": np.array([1.0, 0.0, math.nan, 1.0]),
    }
    assert compute("value", columns, field="score")[0::2] == [1.5, 0.0]
    assert math.isnan(compute("value", columns, field="score")[1])
    assert compute("category", columns, field="channel") == ["web", None, "pos", None]
    assert compute("category", columns, field="online") == ["1", "0", None, "1"]


def test_long_category_columns_give_the_same_text():
    channel = np.array(["web", None, "pos", math.nan] * 10, dtype=object)
    feature = Feature(name="f", kind="category", field="channel")
    times = np.repeat(TIMES, 10)
    assert (
        transaction.category(feature, {"channel": channel}, times).tolist()
        == ["web", None, "pos", None] * 10
    )


def test_distance_is_great_circle_km_and_nan_when_missing():
    columns = {
        "home.lat": np.array([48.8566, 48.8566, math.nan, 0.0]),
        "home.lon": np.array([2.3522, 2.3522, 2.0, 0.0]),
        "shop.lat": np.array([51.5074, 48.8566, 1.0, 0.0]),
        "shop.lon": np.array([-0.1278, 2.3522, 2.0, 180.0]),
    }
    got = compute("distance", columns, field="home", other="shop")
    assert abs(got[0] - 343.5) < 1.0  # Paris - London
    assert got[1] == 0.0
    assert math.isnan(got[2])
    assert abs(got[3] - math.pi * 6371.0088) < 1e-6  # half the equator


def test_age_is_in_julian_years_and_nan_when_missing():
    born = int(datetime(2004, 1, 6, tzinfo=UTC).timestamp())
    columns = {"dob": np.array([born, born, None, born], dtype=object)}
    got = compute("age", columns, field="dob")
    assert abs(got[0] - 20.0) < 0.01
    assert math.isnan(got[2])


def test_a_value_that_is_not_a_number_is_refused_with_its_column():
    columns = {"score": np.array(["12", "abc", "1", "2"], dtype=object)}
    with pytest.raises(RecordError, match="'score' must be numeric"):
        compute("value", columns, field="score")
