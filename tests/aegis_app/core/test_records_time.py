"""The fast timestamp paths agree with the strptime/strftime ones they replaced."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aegis_app.core.records import (
    DATETIME_FORMAT,
    InvalidRecord,
    format_datetime,
    format_datetimes,
    parse_datetime,
)

SECONDS = st.integers(min_value=0, max_value=4_102_444_799)  # 1970 .. 2099


@given(SECONDS)
def test_format_datetime_matches_strftime(ts):
    assert format_datetime(ts) == datetime.fromtimestamp(ts, tz=UTC).strftime(DATETIME_FORMAT)


@given(SECONDS)
def test_parse_datetime_inverts_format_datetime(ts):
    assert parse_datetime(format_datetime(ts)) == ts


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2018-04-01 01:01:01", 1522544461),
        ("2018-4-1 1:1:1", 1522544461),  # unpadded: strptime still takes it
        ("2018-04-01T01:01:01+00:00", 1522544461),
        ("2018-04-01T03:01:01+02:00", 1522544461),
    ],
)
def test_parse_datetime_accepts_the_forms_it_always_did(text, expected):
    assert parse_datetime(text) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "2018-13-01 00:00:00", "2018-04-01 25:00:00"])
def test_parse_datetime_refuses_garbage(text):
    with pytest.raises(InvalidRecord, match="tx_datetime"):
        parse_datetime(text)


@given(st.lists(st.integers(min_value=-62_135_596_800, max_value=253_402_300_799), max_size=50))
def test_format_datetimes_is_format_datetime_of_each(stamps):
    """Years 1 to 9999, negative (before 1970) included."""
    assert format_datetimes(stamps) == [format_datetime(ts) for ts in stamps]
