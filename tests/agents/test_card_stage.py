"""The card stage's per-event logic, without a broker: read, refuse, re-key, observe."""

from __future__ import annotations

import json

from aegis_app.core import codec
from aegis_app.core.messages import Refusal, Rekey, TxHop
from aegis_app.core.records import Transaction, parse_datetime
from agents.card_stage import card_key, observe_card, read_transaction
from tables.features import CardState

MAX_BYTES = 10_000


def _tx(tx_id: int, when: str, amount: float = 10.0, card: int = 7, terminal: int = 3):
    return Transaction(
        transaction_id=tx_id,
        tx_datetime=when,
        customer_id=card,
        terminal_id=terminal,
        tx_amount=amount,
        ts=parse_datetime(when),
    )


def test_a_valid_record_keyed_by_its_card_is_read():
    tx = _tx(1, "2018-04-01 10:00:00")
    read = read_transaction(codec.encode(tx), b"7", MAX_BYTES)
    assert isinstance(read, Transaction)
    assert read.transaction_id == 1 and card_key(read) == "7"


def test_a_record_keyed_by_something_else_is_rekeyed_under_its_card():
    tx = _tx(1, "2018-04-01 10:00:00", card=42)
    assert read_transaction(codec.encode(tx), b"terminal-3", MAX_BYTES) == Rekey("42")
    assert read_transaction(codec.encode(tx), None, MAX_BYTES) == Rekey("42")


def test_bad_bytes_are_refused_with_the_reason():
    read = read_transaction(b"\x09garbage", b"7", MAX_BYTES)
    assert isinstance(read, Refusal) and "unknown wire version 9" in read.reason
    assert read_transaction(None, b"7", MAX_BYTES) == Refusal(
        "payload: expected bytes, got NoneType"
    )
    big = codec.encode(_tx(1, "2018-04-01 10:00:00"))
    assert "exceeds" in read_transaction(big, b"7", 5).reason


def test_observe_card_counts_windows_and_forwards_the_features():
    state = None
    hops: list[TxHop] = []
    for i, when in enumerate(["2018-04-01 10:00:00", "2018-04-01 12:00:00", "2018-04-05 09:00:00"]):
        state, hop = observe_card(_tx(i, when, amount=10.0 * (i + 1)), state, 1_000 + i, 2)
        hops.append(hop)
    last = hops[-1]
    assert last.card["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] == 1.0
    assert last.card["CUSTOMER_ID_NB_TX_7DAY_WINDOW"] == 3.0
    assert last.card["CUSTOMER_ID_AVG_AMOUNT_7DAY_WINDOW"] == 20.0
    assert last.tx["ts"] == parse_datetime("2018-04-05 09:00:00")
    assert last.ingested_ms == 1_002 and last.source_partition == 2
    # The new state value is what the table stores: JSON-serialisable and re-readable.
    assert len(CardState.from_value(json.loads(json.dumps(state)))) == 3


def test_a_redelivered_transaction_is_answered_as_the_first_time_and_not_counted_twice():
    first_state, first = observe_card(_tx(1, "2018-04-01 10:00:00"), None, 0, 0)
    again_state, again = observe_card(_tx(1, "2018-04-01 10:00:00"), first_state, 0, 0)
    assert again.card == first.card
    assert len(CardState.from_value(again_state)) == 1


def test_the_hop_has_the_wire_form_the_terminal_stage_reads():
    _, hop = observe_card(_tx(5, "2018-04-01 10:00:00"), None, 123, 1)
    wire = json.loads(json.dumps(hop.to_wire()))
    assert wire["kind"] == "tx" and wire["tx"]["transaction_id"] == 5
    assert set(wire) == {"kind", "tx", "card", "ingested_ms", "source_partition"}
