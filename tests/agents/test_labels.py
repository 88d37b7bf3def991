"""The label router's per-event logic, without a broker."""

from __future__ import annotations

import json

from aegis_app.core.messages import LabelHop, Refusal
from aegis_app.core.records import parse_datetime
from agents.labels import route_label


def _label(**overrides) -> bytes:
    label = {
        "transaction_id": "t-11",
        "label": 1,
        "source": "analyst",
        "known_at": "2018-04-09 00:00:00",
        "tx_datetime": "2018-04-01 10:00:00",
        "entities": {"card": "c-1", "merchant": "m-305", "category": "grocery_pos"},
    }
    return json.dumps({**label, **overrides}).encode()


def test_a_label_goes_to_every_entity_with_label_based_features():
    routes = route_label(_label(), ("merchant", "category"))
    assert [key for key, _ in routes] == [b"m-305", b"grocery_pos"]
    assert routes[0][1] == LabelHop(
        entity="merchant",
        transaction_id="t-11",
        label=1,
        tx_ts=parse_datetime("2018-04-01 10:00:00"),
        known_at=parse_datetime("2018-04-09 00:00:00"),
    )
    assert routes[1][1].entity == "category"


def test_an_entity_the_label_has_no_key_for_is_left_out():
    routes = route_label(_label(entities={"merchant": "m-1"}), ("merchant", "category"))
    assert [(key, hop.entity) for key, hop in routes] == [(b"m-1", "merchant")]


def test_a_bad_label_is_refused_with_the_field_named():
    refused = route_label(_label(entities={}), ("merchant",))
    assert isinstance(refused, Refusal) and "label.entities" in refused.reason
    refused = route_label(_label(tx_datetime=None), ("merchant",))
    assert isinstance(refused, Refusal) and "tx_datetime" in refused.reason
    assert isinstance(route_label(b"{not json", ("merchant",)), Refusal)
