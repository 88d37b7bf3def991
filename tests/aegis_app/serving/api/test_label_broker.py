"""The label flow end to end on the real embedded broker: POST a label, read it back from
aegis.labels as an aegis_app.core.labels.Label."""

from __future__ import annotations

import json

from aegis_app.core import labels
from aegis_app.core.settings import LABELS_TOPIC
from aegis_app.harness.stack import read_topic
from aegis_app.serving.api.scoring import KafkaPublisher
from tests.aegis_app.serving.api.conftest import AUTH
from tests.aegis_app.serving.store.test_repository import decision

TX_ID = 8_100_000_001


def test_label_is_published_on_aegis_labels(make_client, api_store, broker):
    publisher = KafkaPublisher(broker.url)
    client, _, _ = make_client(publisher=publisher)
    try:
        api_store.upsert_decisions([decision(TX_ID, "block", customer_id=77)])
        response = client.post(
            f"/v1/alerts/{TX_ID}/label",
            json={"label": "legitimate", "note": "customer confirmed", "analyst": "bo"},
            headers=AUTH,
        )
        assert response.status_code == 200, response.text
    finally:
        client.portal.call(publisher.stop)

    def mine(records):
        return [r for r in records if r.key == str(TX_ID).encode()]

    records = mine(read_topic(broker.url, LABELS_TOPIC, lambda recs: mine(recs), timeout=30))
    assert len(records) == 1
    label = labels.parse(records[0].value)
    assert (label.transaction_id, label.label, label.source) == (TX_ID, 0, "analyst")
    assert (label.terminal_id, label.customer_id) == (7, 77)
    assert label.tx_datetime == "2018-04-01 00:00:31" and label.note == "customer confirmed"
    assert label.known_at == response.json()["known_at"]
    assert json.loads(records[0].value)["known_at"] == label.known_at
