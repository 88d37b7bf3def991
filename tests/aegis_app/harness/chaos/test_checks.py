"""The checks' helpers: a card's partition, the lost-per-partition count, feature
families, the batch card state, the feature comparison against the batch engine, and the
process measurements the soak samples."""

from __future__ import annotations

import math
import os

from aiokafka.partitioner import DefaultPartitioner

from aegis_app.core.files import simulator_config
from aegis_app.harness.chaos.checks import (
    _lost_by_partition,
    batch_card_states,
    card_entity,
    check_features,
    feature_family,
    state_events,
)
from aegis_app.harness.chaos.data import card_partition, chaos_transactions, frame_of
from aegis_app.harness.chaos.stack import dir_bytes, rss_bytes
from aegis_app.ingest.replay import Outgoing, ReplayEncoder
from tables.engine import StreamEngine, compute_features

ENCODER = ReplayEncoder(simulator_config())


def _tx(tx_id: int, card: int, day: int, amount: float = 10.0) -> Outgoing:
    raw = {
        "TRANSACTION_ID": tx_id,
        "TX_DATETIME": f"2018-04-{day:02d} 12:00:00",
        "CUSTOMER_ID": card,
        "TERMINAL_ID": 7,
        "TX_AMOUNT": amount,
    }
    return ENCODER.outgoing(ENCODER.codec.reader.record(raw), raw)


def test_card_partition_is_the_producers_partition():
    every = list(range(4))
    choose = DefaultPartitioner()
    for card in range(200):
        assert card_partition(card, 4) == choose(str(card).encode(), every, every)


def test_lost_by_partition_counts_only_lost_ones():
    txs = [_tx(i, card=i % 10, day=1) for i in range(40)]
    lost = {"0", "1", "2", "13"}
    counts = _lost_by_partition(txs, lost, partitions=4)
    assert sum(counts.values()) == 4
    want: dict[str, int] = {}
    for tx in txs:
        if tx.transaction_id in lost:
            key = str(card_partition(tx.card, 4))
            want[key] = want.get(key, 0) + 1
    assert counts == dict(sorted(want.items()))


def test_feature_family():
    assert feature_family("CUSTOMER_ID_NB_TX_1DAY_WINDOW") == "card"
    assert feature_family("TERMINAL_ID_RISK_7DAY_WINDOW") == "terminal"
    assert feature_family("TX_DURING_NIGHT") == "transaction"


def test_batch_card_states_hold_the_same_events_whatever_the_send_order():
    txs = [_tx(1, card=5, day=1), _tx(2, card=5, day=2, amount=20.0), _tx(3, card=6, day=1)]
    engine = StreamEngine(simulator_config())
    entity = card_entity(engine)
    assert entity == "card"
    states = batch_card_states(txs)
    assert set(states) == {"5", "6"}
    backwards = batch_card_states(list(reversed(txs)))
    for card in states:
        assert state_events(engine, entity, states[card]) == state_events(
            engine, entity, backwards[card]
        )
    assert len(state_events(engine, entity, states["5"])) == 2
    assert state_events(engine, entity, states["5"]) != state_events(engine, entity, states["6"])
    assert state_events(engine, entity, None) == []


def test_decisions_with_the_batch_features_pass_and_others_are_counted():
    txs = chaos_transactions(300, seed=3)
    batch = compute_features(frame_of(txs), simulator_config())
    decisions = [
        {"transaction_id": tx.transaction_id, "features": batch.iloc[i].to_dict()}
        for i, tx in enumerate(txs)
    ]
    assert check_features(txs, decisions, None) == (0, {}, [])
    # A card feature and a terminal feature off in one decision, NaN as None in another.
    wrong = {**decisions[10]["features"]}
    wrong["CUSTOMER_ID_NB_TX_7DAY_WINDOW"] += 1
    wrong["TERMINAL_ID_NB_TX_1DAY_WINDOW"] += 1
    nan_name = next(
        (n for n, v in decisions[0]["features"].items() if isinstance(v, float) and math.isnan(v)),
        None,
    )
    copies = [{**decisions[10], "features": wrong}]
    if nan_name is not None:
        copies.append({**decisions[0], "features": {**decisions[0]["features"], nan_name: None}})
    bad, families, examples = check_features(txs, decisions + copies, None)
    assert bad == 1
    assert families == {"card": 1, "terminal": 1}
    assert examples[0]["transaction_id"] == txs[10].transaction_id


def test_process_measurements(tmp_path):
    (tmp_path / "a").write_bytes(b"x" * 100)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b").write_bytes(b"y" * 23)
    assert dir_bytes(tmp_path) == 123
    assert rss_bytes(os.getpid()) > 0
    assert rss_bytes(2**31 - 1) is None  # no such process
