"""Poison records: every one is refused by the card stage's own decoder, for the reason the
record carries, and every kind turns up."""

from __future__ import annotations

import pytest

from aegis_app.core.codec import WIRE_VERSION
from aegis_app.core.records import InvalidRecord
from aegis_app.harness.chaos.poison import (
    POISON_KINDS,
    POISON_WEIGHTS,
    poison_codec,
    poison_records,
)

MAX_BYTES = 64 * 1024


@pytest.mark.parametrize("seed", [0, 3])
def test_every_poison_record_is_refused_with_its_reason(seed):
    records = poison_records(600, seed=seed, max_bytes=MAX_BYTES)
    assert len(records) == 600
    for record in records:
        with pytest.raises(InvalidRecord) as refused:
            poison_codec().decode(record.payload, MAX_BYTES)
        assert str(refused.value) == record.reason and record.reason
        assert record.kind in POISON_KINDS
        assert record.key is None or isinstance(record.key, bytes)


def test_every_kind_turns_up_and_huge_fields_are_rare():
    records = poison_records(1500, seed=1, max_bytes=MAX_BYTES)
    kinds = [r.kind for r in records]
    assert set(kinds) == set(POISON_KINDS)
    assert set(POISON_WEIGHTS) == set(POISON_KINDS)
    assert kinds.count("huge_field") < kinds.count("garbage")


def test_same_seed_same_records():
    first = poison_records(50, seed=7, max_bytes=MAX_BYTES)
    again = poison_records(50, seed=7, max_bytes=MAX_BYTES)
    assert [(r.kind, r.key, r.payload) for r in first] == [
        (r.kind, r.key, r.payload) for r in again
    ]


def test_poison_is_refused_for_what_it_spoils():
    """The kinds that spoil one value are refused for that value, not by chance."""
    records = poison_records(1500, seed=2, max_bytes=MAX_BYTES)
    reasons = {r.kind: r.reason for r in records}
    assert reasons["negative"].startswith("TX_AMOUNT: ")
    assert reasons["too_large_amount"].startswith("TX_AMOUNT: ")
    assert reasons["bad_datetime"].startswith("TX_DATETIME: ")
    assert "ID: " in reasons["missing_id"]
    assert "wire version" in reasons["wire_version"]
    assert all(r.payload[:1] == bytes([WIRE_VERSION]) for r in records if r.kind == "nan")


def test_a_valid_record_of_the_same_codec_is_accepted():
    """The poison's codec reads good records: what it refuses is the spoilt value."""
    codec = poison_codec()
    raw = {
        "TRANSACTION_ID": "7",
        "TX_DATETIME": "2018-04-01 12:00:00",
        "CUSTOMER_ID": "1",
        "TERMINAL_ID": "2",
        "TX_AMOUNT": 5.0,
    }
    assert codec.decode(codec.encode(raw))["amount"] == 5.0
