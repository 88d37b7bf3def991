"""The label router's per-event logic, without a broker."""

from __future__ import annotations

import json

from aegis_app.core.messages import LabelHop, Refusal
from aegis_app.core.records import parse_datetime
from agents.labels import route_label


def _label(**overrides) -> bytes:
    label = {
        "transaction_id": 11,
        "label": 1,
        "source": "analyst",
        "known_at": "2018-04-09 00:00:00",
        "terminal_id": 305,
        "tx_datetime": "2018-04-01 10:00:00",
    }
    return json.dumps({**label, **overrides}).encode()


def test_a_label_is_routed_to_its_terminal_with_its_times():
    key, hop = route_label(_label())
    assert key == b"305"
    assert hop == LabelHop(
        transaction_id=11,
        label=1,
        tx_ts=parse_datetime("2018-04-01 10:00:00"),
        known_at=parse_datetime("2018-04-09 00:00:00"),
    )


def test_a_bad_label_is_refused_with_the_field_named():
    refused = route_label(_label(terminal_id=None))
    assert isinstance(refused, Refusal) and "terminal_id" in refused.reason
    assert isinstance(route_label(b"{not json"), Refusal)
