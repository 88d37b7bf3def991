"""The card stage's per-event logic, without a broker: read, refuse, re-key, observe."""

from __future__ import annotations

import json

import pytest

from aegis_app.core.codec import RecordCodec
from aegis_app.core.config import load, resolve
from aegis_app.core.messages import Refusal, Rekey, TxHop, hop_from_wire
from aegis_app.core.records import parse_datetime
from agents.card_stage import observe_card, read_transaction
from tables.engine import StreamEngine

MAX_BYTES = 10_000


@pytest.fixture(scope="module")
def config():
    return load(resolve(None))


@pytest.fixture(scope="module")
def codec(config):
    return RecordCodec(config)


@pytest.fixture(scope="module")
def engine(config):
    return StreamEngine(config)


def _raw(tx_id: int, when: str, amount: float = 10.0, card: int = 7, terminal: int = 3):
    """A Handbook-schema record, as its producer writes it."""
    return {
        "TRANSACTION_ID": tx_id,
        "TX_DATETIME": when,
        "CUSTOMER_ID": card,
        "TERMINAL_ID": terminal,
        "TX_AMOUNT": amount,
    }


def _record(codec, *args, **kwargs):
    return codec.reader.record(_raw(*args, **kwargs))


def test_a_valid_record_keyed_by_its_card_is_read(codec):
    read = read_transaction(codec, codec.encode(_raw(1, "2018-04-01 10:00:00")), b"7", MAX_BYTES)
    assert isinstance(read, dict)
    assert read["transaction_id"] == "1" and read["card"] == "7" and read["merchant"] == "3"
    assert read["ts"] == parse_datetime("2018-04-01 10:00:00")


def test_a_record_keyed_by_something_else_is_rekeyed_under_its_card(codec):
    payload = codec.encode(_raw(1, "2018-04-01 10:00:00", card=42))
    assert read_transaction(codec, payload, b"terminal-3", MAX_BYTES) == Rekey("42")
    assert read_transaction(codec, payload, None, MAX_BYTES) == Rekey("42")


def test_bad_bytes_and_bad_fields_are_refused_with_the_reason(codec):
    read = read_transaction(codec, b"\x09garbage", b"7", MAX_BYTES)
    assert isinstance(read, Refusal) and "unknown wire version 9" in read.reason
    assert read_transaction(codec, None, b"7", MAX_BYTES) == Refusal(
        "payload: expected bytes, got NoneType"
    )
    big = codec.encode(_raw(1, "2018-04-01 10:00:00"))
    assert "exceeds" in read_transaction(codec, big, b"7", 5).reason
    fields = codec.wire_fields(_raw(1, "2018-04-01 10:00:00"))
    bad_time = codec.encode_fields({**fields, "TX_DATETIME": "yesterday"})
    refused = read_transaction(codec, bad_time, b"7", MAX_BYTES)
    assert isinstance(refused, Refusal) and refused.reason.startswith("TX_DATETIME:")
    negative = codec.encode_fields({**fields, "TX_AMOUNT": -5.0})
    assert read_transaction(codec, negative, b"7", MAX_BYTES).reason.startswith("TX_AMOUNT:")


def test_observe_card_counts_windows_and_passes_the_features_on(codec, engine):
    state = None
    hops: list[TxHop] = []
    times = ["2018-04-01 10:00:00", "2018-04-01 12:00:00", "2018-04-05 09:00:00"]
    for i, when in enumerate(times):
        record = _record(codec, i, when, amount=10.0 * (i + 1))
        state, hop = observe_card(engine, "card", record, state, 1_000 + i)
        hops.append(hop)
    last = hops[-1]
    assert last.features["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] == 1.0
    assert last.features["CUSTOMER_ID_NB_TX_7DAY_WINDOW"] == 3.0
    assert last.features["CUSTOMER_ID_AVG_AMOUNT_7DAY_WINDOW"] == 20.0
    assert last.pending == ["terminal"]
    assert last.record["ts"] == parse_datetime("2018-04-05 09:00:00")
    assert last.ingested_ms == 1_002
    assert isinstance(state, bytes) and engine.state_size("card", state).events == 3


def test_a_redelivered_transaction_is_answered_as_the_first_time_and_not_counted_twice(
    codec, engine
):
    record = _record(codec, 1, "2018-04-01 10:00:00")
    first_state, first = observe_card(engine, "card", record, None, 0)
    again_state, again = observe_card(engine, "card", record, first_state, 0)
    assert again.features == first.features
    assert engine.state_size("card", again_state).events == 1


def test_the_hop_survives_its_json_wire_form(codec, engine):
    _, hop = observe_card(engine, "card", _record(codec, 5, "2018-04-01 10:00:00"), None, 123)
    wire = json.loads(json.dumps(hop.to_wire()))
    assert wire["kind"] == "tx" and wire["record"]["transaction_id"] == "5"
    assert hop_from_wire(wire) == hop
