"""Replay publishes each transaction in the config's wire format, and each label only once
the replayed clock reaches its known time, naming the transaction's entity keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from aegis_app.core import config as configs
from aegis_app.core.codec import RecordCodec
from aegis_app.core.files import iter_frame, iter_transactions, simulator_config
from aegis_app.core.records import parse_datetime
from aegis_app.core.timerules import DAY
from aegis_app.harness import simulator
from aegis_app.ingest.replay import publication_order

SPARKOV_SLICE = Path("/work/shared/data/sparkov-slice.csv.gz")
SPARKOV = Path(__file__).resolve().parents[3] / "configs" / "sparkov.toml"


def test_labels_are_published_when_known_never_earlier():
    frame = simulator.generate(customers=40, terminals=80, days=20, seed=5)
    schedule = list(publication_order(iter_frame(frame), label_delay_days=7))
    clock = None  # time of the latest transaction published so far
    labels = 0
    for position, (kind, item) in enumerate(schedule):
        if kind == "tx":
            clock = item.record["ts"]
            continue
        assert kind == "label"
        labels += 1
        known_at = parse_datetime(item.known_at)
        assert known_at == parse_datetime(item.tx_datetime) + 7 * DAY
        later = [x for k, x in schedule[position + 1 :] if k == "tx"]
        if later:  # due: the next transaction is at or after the label's known time
            assert later[0].record["ts"] >= known_at
            assert clock is None or clock < known_at  # and it was not due any earlier
    assert labels == len(frame)  # every row of a labelled file gets its label


def test_transactions_travel_in_the_configs_wire_format_keyed_by_card():
    frame = simulator.generate(customers=10, terminals=20, days=3, seed=1)
    codec = RecordCodec(simulator_config())
    sent = [item for kind, item in publication_order(iter_frame(frame), 7) if kind == "tx"]
    assert len(sent) == len(frame)
    for message, (_, row) in zip(sent, frame.iterrows(), strict=True):
        raw = {**row.to_dict(), "TX_DATETIME": f"{row['TX_DATETIME']:%Y-%m-%d %H:%M:%S}"}
        assert message.payload == codec.encode(raw)
        assert codec.decode(message.payload) == message.record
        assert message.key == str(row["CUSTOMER_ID"]).encode()


def test_a_label_names_the_transactions_entities():
    frame = simulator.generate(customers=10, terminals=20, days=3, seed=1)
    schedule = list(publication_order(iter_frame(frame), label_delay_days=7))
    labels = {item.transaction_id: item for kind, item in schedule if kind == "label"}
    first = frame.iloc[0]
    label = labels[str(first["TRANSACTION_ID"])]
    assert label.entities == {
        "card": str(first["CUSTOMER_ID"]),
        "terminal": str(first["TERMINAL_ID"]),
    }
    assert label.card == str(first["CUSTOMER_ID"])
    assert (label.label, label.source) == (int(first["TX_FRAUD"]), "chargeback")


def test_bad_rows_are_reported_with_their_line_and_no_label():
    frame = simulator.generate(customers=10, terminals=20, days=3, seed=1)
    frame.loc[2, "TX_AMOUNT"] = -1.0
    schedule = list(publication_order(iter_frame(frame), label_delay_days=7))
    bad = [item for kind, item in schedule if kind == "bad"]
    assert bad == [(4, "TX_AMOUNT: -1.0 is not in 0 .. 1e9")]
    assert sum(kind == "label" for kind, _ in schedule) == len(frame) - 1


def test_no_labels_when_disabled():
    frame = simulator.generate(customers=10, terminals=20, days=3, seed=1)
    kinds = {kind for kind, _ in publication_order(iter_frame(frame), label_delay_days=None)}
    assert kinds == {"tx"}


@pytest.mark.skipif(not SPARKOV_SLICE.exists(), reason="the shared Sparkov slice is absent")
def test_the_sparkov_slice_replays_with_its_config():
    config = configs.load(SPARKOV)
    codec = RecordCodec(config)
    rows = iter_transactions(SPARKOV_SLICE, config)
    schedule = list(publication_order(rows, config.label_delay_days, config))
    sent = [item for kind, item in schedule if kind == "tx"]
    labels = [item for kind, item in schedule if kind == "label"]
    assert len(sent) > 10_000 and len(labels) == len(sent)
    first = codec.decode(sent[0].payload)
    assert len(first["card"]) >= 12 and first["card"].isdigit()  # card numbers stay exact
    assert sent[0].key == first["card"].encode()
    assert set(labels[0].entities) == {"card", "merchant", "category"}
