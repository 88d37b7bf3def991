"""The terminal stage's per-event logic, without a broker: transactions get their full
feature vector; labels count only from when they are known."""

from __future__ import annotations

import json

from aegis_app.core.messages import LabelHop, ScoreRequest, TxHop, hop_from_wire
from agents.terminal_stage import observe_terminal
from tables.features import ALL_FEATURES, DAY

DELAY = 7
T0 = 1_522_540_800  # 2018-04-01 00:00:00 UTC


def _hop(tx_id: int, ts: int) -> TxHop:
    tx = {"transaction_id": tx_id, "ts": ts, "tx_amount": 12.5, "terminal_id": 3}
    card = {name: 0.0 for name in ALL_FEATURES if name.startswith("CUSTOMER_ID")}
    return TxHop(tx=tx, card=card, ingested_ms=99, source_partition=0)


def test_a_transaction_gets_a_score_request_with_every_feature():
    state, request = observe_terminal(_hop(1, T0), None, DELAY)
    assert isinstance(request, ScoreRequest)
    assert set(request.features) == set(ALL_FEATURES)
    assert request.features["TX_AMOUNT"] == 12.5 and request.ingested_ms == 99
    assert state is not None


def test_a_label_updates_state_and_asks_for_no_score():
    state, _ = observe_terminal(_hop(1, T0), None, DELAY)
    state, request = observe_terminal(LabelHop(1, 1, T0, T0 + DELAY * DAY), state, DELAY)
    assert request is None


def test_terminal_risk_uses_a_fraud_label_only_once_it_is_known():
    state, _ = observe_terminal(_hop(1, T0), None, DELAY)
    known_at = T0 + 9 * DAY
    state, _ = observe_terminal(LabelHop(1, 1, T0, known_at), state, DELAY)
    # Day 8: the transaction is in the delayed window, but its label is not known yet.
    _, before = observe_terminal(_hop(2, T0 + 8 * DAY), state, DELAY)
    _, after = observe_terminal(_hop(3, T0 + 10 * DAY), state, DELAY)
    assert before.features["TERMINAL_ID_NB_TX_7DAY_WINDOW"] == 1.0
    assert before.features["TERMINAL_ID_RISK_7DAY_WINDOW"] == 0.0
    assert after.features["TERMINAL_ID_RISK_7DAY_WINDOW"] == 1.0


def test_messages_survive_their_wire_form():
    for hop in (_hop(4, T0), LabelHop(4, 0, T0, T0 + DAY)):
        assert hop_from_wire(json.loads(json.dumps(hop.to_wire()))) == hop
