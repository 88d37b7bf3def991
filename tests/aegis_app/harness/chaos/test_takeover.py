"""The takeover time's arithmetic (aegis_app/harness/chaos/failover.py): which decisions
count as the survivor's, per partition of the killed worker, from the decision records."""

from __future__ import annotations

import json
from types import SimpleNamespace

from aegis_app.harness.chaos.data import card_partition
from aegis_app.harness.chaos.failover import Kill, decided_per_second, takeover_times


def _tx(tx_id: str, card: str):
    return SimpleNamespace(transaction_id=tx_id, card=card)


def _decision(tx_id: str, at_ms: int, ingested_ms: int):
    value = json.dumps({"transaction_id": tx_id, "ingested_ms": ingested_ms}).encode()
    return SimpleNamespace(key=tx_id.encode(), value=value, timestamp=at_ms)


def _cards_by_partition(partitions: int) -> dict[int, str]:
    found: dict[int, str] = {}
    card = 0
    while len(found) < partitions:
        found.setdefault(card_partition(str(card), partitions), str(card))
        card += 1
    return found


def test_only_transactions_sent_after_the_kill_count():
    cards = _cards_by_partition(4)
    txs = [_tx("early", cards[1]), _tx("late", cards[1]), _tx("other", cards[0])]
    kill = Kill("w1", [1, 3], at_ms=100_000, dead_ms=100_050)
    records = [
        # sent before the kill, decided soon after it (the dead worker had passed it on)
        _decision("early", 100_300, 99_900),
        _decision("late", 107_250, 100_200),  # the survivor's first of partition 1
        _decision("late", 109_000, 100_200),  # a duplicate: the first copy counts
        _decision("other", 100_400, 100_100),  # partition 0: the survivor's own
    ]
    assert takeover_times(records, txs, kill, 4) == {1: 7.25, 3: None}


def test_decisions_per_second_after_the_kill():
    cards = _cards_by_partition(4)
    txs = [_tx(str(i), cards[3]) for i in range(3)] + [_tx("mine", cards[2])]
    kill = Kill("w1", [3], at_ms=10_000, dead_ms=10_010)
    records = [
        _decision("0", 9_990, 9_900),  # before the kill
        _decision("1", 10_200, 9_950),
        _decision("2", 12_500, 10_100),
        _decision("mine", 10_500, 10_100),  # not a partition of the killed worker
    ]
    assert decided_per_second(records, txs, kill, 4, seconds=3) == [1, 0, 1]
