"""Poison records: every one is refused by the card stage's own decoder, for the reason the
record carries, and every kind turns up."""

from __future__ import annotations

import pytest

from aegis_app.core import codec
from aegis_app.core.records import InvalidRecord
from aegis_app.harness.chaos.poison import POISON_KINDS, POISON_WEIGHTS, poison_records

MAX_BYTES = 64 * 1024


@pytest.mark.parametrize("seed", [0, 3])
def test_every_poison_record_is_refused_with_its_reason(seed):
    records = poison_records(600, seed=seed, max_bytes=MAX_BYTES)
    assert len(records) == 600
    for record in records:
        with pytest.raises(InvalidRecord) as refused:
            codec.decode(record.payload, MAX_BYTES)
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
