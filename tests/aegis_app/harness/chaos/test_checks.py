"""The checks' pure helpers: a card's partition, the lost-per-partition count, feature
families, the batch card state, and the process measurements the soak samples."""

from __future__ import annotations

import os

from aiokafka.partitioner import DefaultPartitioner

from aegis_app.core.records import Transaction, parse_datetime
from aegis_app.harness.chaos.checks import _lost_by_partition, batch_card_states, feature_family
from aegis_app.harness.chaos.data import card_partition
from aegis_app.harness.chaos.stack import dir_bytes, rss_bytes


def _tx(tx_id: int, card: int, day: int, amount: float = 10.0) -> Transaction:
    when = f"2018-04-{day:02d} 12:00:00"
    return Transaction(
        transaction_id=tx_id,
        tx_datetime=when,
        customer_id=card,
        terminal_id=7,
        tx_amount=amount,
        ts=parse_datetime(when),
    )


def test_card_partition_is_the_producers_partition():
    every = list(range(4))
    choose = DefaultPartitioner()
    for card in range(200):
        assert card_partition(card, 4) == choose(str(card).encode(), every, every)


def test_lost_by_partition_counts_only_lost_ones():
    txs = [_tx(i, card=i % 10, day=1) for i in range(40)]
    lost = {0, 1, 2, 13}
    counts = _lost_by_partition(txs, lost, partitions=4)
    assert sum(counts.values()) == 4
    want: dict[str, int] = {}
    for tx in txs:
        if tx.transaction_id in lost:
            key = str(card_partition(tx.customer_id, 4))
            want[key] = want.get(key, 0) + 1
    assert counts == dict(sorted(want.items()))


def test_feature_family():
    assert feature_family("CUSTOMER_ID_NB_TX_1DAY_WINDOW") == "card"
    assert feature_family("TERMINAL_ID_RISK_7DAY_WINDOW") == "terminal"
    assert feature_family("TX_DURING_NIGHT") == "transaction"


def test_batch_card_states_ignore_send_order():
    txs = [_tx(1, card=5, day=1), _tx(2, card=5, day=2, amount=20.0), _tx(3, card=6, day=1)]
    states = batch_card_states(txs)
    assert set(states) == {5, 6}
    assert states == batch_card_states(list(reversed(txs)))
    assert states[5] != states[6]


def test_process_measurements(tmp_path):
    (tmp_path / "a").write_bytes(b"x" * 100)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b").write_bytes(b"y" * 23)
    assert dir_bytes(tmp_path) == 123
    assert rss_bytes(os.getpid()) > 0
    assert rss_bytes(2**31 - 1) is None  # no such process
