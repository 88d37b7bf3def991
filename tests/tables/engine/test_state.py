"""Packed state: round trips through bytes, stays bounded over a long history, and refuses
bytes it cannot read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aegis_app.core.config import load
from aegis_app.core.timerules import DAY
from tables.engine import StreamEngine
from tables.engine import state as packed
from tests.tables.engine.cases import START

ROOT = Path(__file__).resolve().parents[3]


def handbook() -> StreamEngine:
    return StreamEngine(load(ROOT / "configs" / "handbook.toml"))


def tx(i: int, ts: int) -> dict:
    return {
        "transaction_id": f"tx-{i}",
        "card": "c",
        "merchant": "m",
        "amount": 10.0 + i % 7,
        "ts": ts,
        "label": None,
    }


def test_a_state_round_trips_through_bytes():
    engine = handbook()
    plan = engine.plan.entities["terminal"]
    blob = None
    for i in range(20):
        _, states = engine.observe(tx(i, START + i * 3600), {"terminal": blob})
        blob = states["terminal"]
        if i % 3 == 0:
            blob = engine.observe_label("terminal", blob, f"tx-{i}", START, START + DAY, True)
    state = packed.decode(plan, blob)
    assert len(state) == 20 and state.labels.shape == (3, 7)
    assert packed.encode(plan, state) == blob
    assert state.ts.tolist() == [START + i * 3600 for i in range(20)]
    assert state.label_known.tolist() == [START + DAY] * 7
    card = engine.plan.entities["card"]
    _, states = engine.observe(tx(0, START), {})
    decoded = packed.decode(card, states["card"])
    assert decoded.numeric(card, "amount").tolist() == [10.0]
    assert packed.encode(card, decoded) == states["card"]


def test_state_stays_bounded_over_500_days():
    """Eight transactions a day for 500 days, a tenth of them frauds: the card keeps its
    30 days, the terminal its 30 + 7 + 7 days, whatever the history."""
    engine = handbook()
    card_plan, terminal_plan = engine.plan.entities["card"], engine.plan.entities["terminal"]
    card = terminal = None
    step = 3 * 3600
    for i in range(500 * 8):
        ts = START + i * step
        _, states = engine.observe(tx(i, ts), {"card": card, "terminal": terminal})
        card, terminal = states["card"], states["terminal"]
        if i % 10 == 0:
            terminal = engine.observe_label("terminal", terminal, f"tx-{i}", ts, ts + 7 * DAY, True)
    card_events = 30 * DAY // step  # (t - 30 days, t]
    terminal_events = 44 * DAY // step
    assert engine.state_size("card", card).events == card_events
    assert engine.state_size("terminal", terminal).events == terminal_events
    assert engine.state_size("terminal", terminal).labels <= terminal_events // 10 + 1
    # 21-byte header; a card event is 4 + 3 x 8 bytes (time, id, amount, terminal), a
    # terminal event 4 + 8 (time, id), a label 3 x 8.
    assert packed.event_bytes(card_plan) == 28 and packed.event_bytes(terminal_plan) == 12
    assert len(card) == 21 + 28 * card_events < 7 * 1024
    assert len(terminal) <= 21 + 12 * terminal_events + 24 * (terminal_events // 10 + 1) < 6 * 1024


def test_unreadable_bytes_are_refused_with_the_reason():
    engine = handbook()
    plan = engine.plan.entities["card"]
    _, states = engine.observe(tx(0, START), {})
    blob = states["card"]
    with pytest.raises(packed.StateError, match="expected"):
        packed.decode(plan, blob[:-1])
    with pytest.raises(packed.StateError, match="version 9"):
        packed.decode(plan, b"\x09" + blob[1:])
    with pytest.raises(packed.StateError, match="shorter than its header"):
        packed.decode(plan, b"\x01\x02")


def test_pruning_drops_old_events_and_labels_only():
    engine = handbook()
    plan = engine.plan.entities["terminal"]
    state = packed.empty(plan)
    for i, ts in enumerate([START, START + 10 * DAY, START + 44 * DAY]):
        cells = packed.event_cells(plan, i + 1, {}, {})
        state = packed.append(state, ts, cells)
        state = packed.with_label(state, i + 1, ts, ts + DAY, True)
    kept = packed.pruned(state, plan.horizon)
    assert kept.ts.tolist() == [START + 10 * DAY, START + 44 * DAY]
    assert kept.label_ids.tolist() == [2, 3]
    assert np.array_equal(kept.ids, np.array([2, 3], dtype=np.uint64))


def test_the_compiled_reader_and_writer_agree_with_decode_and_encode_byte_for_byte():
    engine = handbook()
    plan = engine.plan.entities["terminal"]
    blob, width = None, packed.columns(plan)
    for i in range(30):
        _, states = engine.observe(tx(i, START + i * 7200 - (i % 4) * 60), {"terminal": blob})
        blob = states["terminal"]
        if i % 4 == 0:  # labels too, and a negative id hash among them
            blob = engine.observe_label("terminal", blob, f"tx-{i}", START, START + DAY, True)
        raw = np.frombuffer(blob, dtype=np.uint8)
        ok, ts, cells, labels = packed.unpack(raw, width, plan.layout)
        state = packed.decode(plan, blob)
        assert ok and ts.tolist() == state.ts.tolist()
        assert np.array_equal(cells, state.cells) and np.array_equal(labels, state.labels)
        fits, again = packed.pack(ts, cells, labels, plan.layout)
        assert fits and again.tobytes() == blob == packed.encode(plan, state)
    # Bytes that are not a state of this layout are not read (decode() names why).
    for bad in (blob[:-1], b"\x09" + blob[1:], b"\x01\x02"):
        assert not packed.unpack(np.frombuffer(bad, np.uint8), width, plan.layout)[0]
    card = engine.plan.entities["card"]
    assert not packed.unpack(np.frombuffer(blob, np.uint8), width, card.layout)[0]


def test_a_corrupt_state_is_refused_by_the_stream_with_the_reason():
    engine = handbook()
    _, states = engine.observe(tx(0, START), {})
    with pytest.raises(packed.StateError, match="expected"):
        engine.observe_entity("card", tx(1, START + 60), states["card"][:-1])
    with pytest.raises(packed.StateError, match="layout"):
        engine.features_against("terminal", tx(1, START + 60), states["card"])


def test_adding_an_event_without_its_features_keeps_the_same_state():
    engine = handbook()
    blob = None
    for i in range(10):
        record = tx(i, START + i * 3600)
        features, full = engine.observe_entity("terminal", record, blob)
        added, lateness = engine.add_event("terminal", record, blob)
        assert added == full and lateness == 0
        assert engine.features_against("terminal", record, blob) == features
        blob = full
    assert engine.add_event("terminal", tx(3, START), blob) == (blob, 9 * 3600)  # again: as it was
