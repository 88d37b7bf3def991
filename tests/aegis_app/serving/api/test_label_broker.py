"""The label flow end to end on the real embedded broker: POST a label, read it back from
aegis.labels as an aegis_app.core.labels.Label naming the stored decision's entity keys."""

from __future__ import annotations

import asyncio
import json

from aegis_app.core import labels
from aegis_app.core.codec import RecordCodec
from aegis_app.core.settings import LABELS_TOPIC, TRANSACTIONS_TOPIC
from aegis_app.harness.stack import read_topic
from aegis_app.serving.api.scoring import KafkaPublisher
from tests.aegis_app.serving.api.conftest import AUTH, stored_decision

TX_ID = "8100000001"


def test_label_is_published_on_aegis_labels(make_client, api_store, broker):
    publisher = KafkaPublisher(broker.url)
    client, _, _ = make_client(publisher=publisher)
    try:
        api_store.upsert_decisions([stored_decision(TX_ID, "block", card=77)])
        response = client.post(
            f"/v1/alerts/{TX_ID}/label",
            json={"label": "legitimate", "note": "customer confirmed", "analyst": "bo"},
            headers=AUTH,
        )
        assert response.status_code == 200, response.text
    finally:
        client.portal.call(publisher.stop)

    def mine(records):
        return [r for r in records if r.key == TX_ID.encode()]

    records = mine(read_topic(broker.url, LABELS_TOPIC, lambda recs: mine(recs), timeout=30))
    assert len(records) == 1
    label = labels.parse(records[0].value)
    assert (label.transaction_id, label.label, label.source) == (TX_ID, 0, "analyst")
    assert label.entities == {"card": "77", "terminal": "7"} and label.card == "77"
    assert label.tx_datetime == "2018-04-01 00:00:31" and label.note == "customer confirmed"
    assert label.known_at == response.json()["known_at"]
    assert json.loads(records[0].value)["known_at"] == label.known_at


def test_a_transaction_is_published_as_the_codec_wrote_it(broker, handbook):
    codec = RecordCodec(handbook)
    raw = {
        "TRANSACTION_ID": "8100000002",
        "TX_DATETIME": "2018-04-10 10:00:00",
        "CUSTOMER_ID": "card-8100000002",
        "TERMINAL_ID": 7,
        "TX_AMOUNT": 12.5,
    }
    record = codec.reader.record(raw)
    publisher = KafkaPublisher(broker.url)

    async def publish() -> None:
        try:
            await publisher.publish_transaction(codec.encode(raw), codec.key(record))
        finally:
            await publisher.stop()

    asyncio.run(publish())

    def mine(records):
        return [r for r in records if r.key == b"card-8100000002"]

    [message] = mine(read_topic(broker.url, TRANSACTIONS_TOPIC, mine, timeout=30))
    assert codec.decode(message.value) == record
