"""interleave: every transaction and every poison record appears once, each in its own
order, the poison scattered among the transactions."""

from __future__ import annotations

from aegis_app.harness.chaos.poison import poison_records
from aegis_app.harness.chaos.streaming import interleave


def _split(items):
    txs = [item for kind, item in items if kind == "tx"]
    poison = [item for kind, item in items if kind == "poison"]
    return txs, poison


def test_interleave_keeps_every_item_in_order():
    txs = list(range(500))
    poison = poison_records(80, seed=2, max_bytes=64 * 1024)
    items = interleave(txs, poison, seed=2)
    assert len(items) == len(txs) + len(poison)
    got_txs, got_poison = _split(items)
    assert got_txs == txs
    assert [id(p) for p in got_poison] == [id(p) for p in poison]
    # scattered, not bunched at one end
    positions = [i for i, (kind, _) in enumerate(items) if kind == "poison"]
    assert positions[0] < len(items) // 2 < positions[-1]


def test_interleave_edges_and_determinism():
    poison = poison_records(5, seed=0, max_bytes=64 * 1024)
    assert interleave([], poison) == [("poison", p) for p in poison]
    assert interleave([1, 2, 3], []) == [("tx", 1), ("tx", 2), ("tx", 3)]
    txs = list(range(40))
    assert interleave(txs, poison, seed=4) == interleave(txs, poison, seed=4)
