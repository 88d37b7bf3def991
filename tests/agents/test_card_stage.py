"""The card stage's per-event logic, without a broker: read, refuse, re-key, observe and
ask for the decision."""

from __future__ import annotations

import json
from typing import NamedTuple

import pytest

from aegis_app.core.codec import RecordCodec
from aegis_app.core.config import load, resolve
from aegis_app.core.messages import Refusal, Rekey, TxHop, hop_from_wire
from aegis_app.core.records import parse_datetime
from agents.card_stage import Observed, observe_transactions, read_transaction
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


class One(NamedTuple):
    card_state: bytes | None
    request: object
    hops: list


def observe_transaction(engine, card_entity, record, card_state, others, ingested_ms) -> One:
    """observe_transactions of one transaction (its card state under slot 0)."""
    keys = engine.keys(record)
    by_key = {entity: {keys[entity]: state} for entity, state in others.items()}
    batch = observe_transactions(
        engine, card_entity, [record], [0], {0: card_state}, by_key, [ingested_ms]
    )
    (outcome,) = batch.outcomes
    assert isinstance(outcome, Observed), outcome
    return One(batch.card_states.get(0, card_state), outcome.request, outcome.hops)


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


def test_observe_transaction_counts_windows_and_asks_for_the_decision(codec, engine):
    state = None
    observed = []
    times = ["2018-04-01 10:00:00", "2018-04-01 12:00:00", "2018-04-05 09:00:00"]
    for i, when in enumerate(times):
        record = _record(codec, i, when, amount=10.0 * (i + 1))
        step = observe_transaction(engine, "card", record, state, {}, 1_000 + i)
        state = step.card_state
        observed.append(step)
    last = observed[-1].request
    assert last.features["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] == 1.0
    assert last.features["CUSTOMER_ID_NB_TX_7DAY_WINDOW"] == 3.0
    assert last.features["CUSTOMER_ID_AVG_AMOUNT_7DAY_WINDOW"] == 20.0
    assert list(last.features) == list(engine.plan.names)  # the whole vector, in order
    assert last.tx["ts"] == parse_datetime("2018-04-05 09:00:00")
    assert last.ingested_ms == 1_002
    assert isinstance(state, bytes) and engine.state_size("card", state).events == 3
    # The terminal's state is not kept here: one hop to it, with the record.
    assert observed[-1].hops == [TxHop(entity="terminal", record=last.tx)]


def test_the_other_entities_features_are_read_from_their_state_as_it_stands(codec, engine):
    terminal = None
    for i in range(3):  # three earlier transactions at terminal 3, eight days before
        record = _record(codec, 100 + i, "2018-04-01 10:00:00", card=50 + i)
        terminal = engine.observe_entity("terminal", record, terminal)[1]
    record = _record(codec, 9, "2018-04-09 11:00:00")
    with_state = observe_transaction(engine, "card", record, None, {"terminal": terminal}, 0)
    without = observe_transaction(engine, "card", record, None, {}, 0)
    assert with_state.request.features["TERMINAL_ID_NB_TX_7DAY_WINDOW"] == 3.0
    assert without.request.features["TERMINAL_ID_NB_TX_7DAY_WINDOW"] == 0.0
    # ... and as the terminal's own stage would compute them, which keeps the state.
    assert (
        engine.features_against("terminal", record, terminal)
        == (engine.observe_entity("terminal", record, terminal)[0])
    )
    assert engine.state_size("terminal", terminal).events == 3  # read, not changed


def test_a_redelivered_transaction_is_answered_as_the_first_time_and_not_counted_twice(
    codec, engine
):
    record = _record(codec, 1, "2018-04-01 10:00:00")
    first = observe_transaction(engine, "card", record, None, {}, 0)
    again = observe_transaction(engine, "card", record, first.card_state, {}, 0)
    assert again.request.features == first.request.features
    assert engine.state_size("card", again.card_state).events == 1
    # ... and its state is written (and sent on) again, unchanged: should the first write
    # have been lost before its changelog record went out, the changelog still gets it.
    batch = observe_transactions(engine, "card", [record], [0], {0: first.card_state}, {}, [0])
    assert batch.card_states == {0: first.card_state}


def test_the_hop_survives_its_json_wire_form(codec, engine):
    record = _record(codec, 5, "2018-04-01 10:00:00")
    (hop,) = observe_transaction(engine, "card", record, None, {}, 123).hops
    wire = json.loads(json.dumps(hop.to_wire()))
    assert wire["kind"] == "tx" and wire["entity"] == "terminal"
    assert wire["record"]["transaction_id"] == "5"
    assert hop_from_wire(wire) == hop


def test_a_hop_in_the_chained_form_of_earlier_versions_is_refused_by_name():
    old = {"kind": "tx", "record": {}, "features": {}, "pending": ["terminal"]}
    with pytest.raises(KeyError, match="chained form"):
        hop_from_wire(old)


def test_a_batch_is_observed_as_its_transactions_one_after_another(codec, engine):
    """Two cards, interleaved, with a redelivery: the batch's features and final states
    are those of the same transactions observed one at a time."""
    times = ["2018-04-01 10:00:00", "2018-04-01 10:05:00", "2018-04-01 11:00:00"]
    records = [
        _record(codec, i, when, amount=5.0 + i, card=card)
        for i, (when, card) in enumerate(
            [(times[0], 1), (times[0], 2), (times[1], 1), (times[2], 2), (times[2], 1)]
        )
    ]
    records.append(records[2])  # a redelivery: answered as the first time, not counted again
    one_by_one: list[dict] = []
    states: dict[str, bytes | None] = {}
    for record in records:
        step = observe_transaction(engine, "card", record, states.get(record["card"]), {}, 0)
        states[record["card"]] = step.card_state
        one_by_one.append(step.request.features)
    slots = [record["card"] for record in records]
    batch = observe_transactions(engine, "card", records, slots, {}, {}, [0] * len(records))
    assert [outcome.request.features for outcome in batch.outcomes] == one_by_one
    assert batch.card_states == states
    assert engine.state_size("card", batch.card_states["1"]).events == 3


def test_a_transaction_whose_state_cannot_be_read_is_refused_alone(codec, engine):
    good = _record(codec, 1, "2018-04-01 10:00:00", card=1, terminal=3)
    spoiled = _record(codec, 2, "2018-04-01 10:01:00", card=1, terminal=4)
    later = _record(codec, 3, "2018-04-01 10:02:00", card=1, terminal=3)
    others = {"terminal": {"4": b"not a state"}}
    batch = observe_transactions(
        engine, "card", [good, spoiled, later], ["1", "1", "1"], {}, others, [0, 0, 0]
    )
    first, refused, third = batch.outcomes
    assert isinstance(refused, Exception) and "terminal state" in str(refused)
    assert third.request.features["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] == 2.0  # 1 and 3 only
    assert engine.state_size("card", batch.card_states["1"]).events == 2
    assert first.hops == [TxHop(entity="terminal", record=first.request.tx)]
