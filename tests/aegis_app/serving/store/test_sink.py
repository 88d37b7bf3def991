"""The decision sink on the real embedded broker: batches upserted, offsets committed after
the write, duplicates and restarts never making a second row."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

from aiokafka import AIOKafkaProducer

from aegis_app.core.labels import Label
from aegis_app.core.settings import ALERTS_TOPIC, DEADLETTER_TOPIC, DECISIONS_TOPIC, LABELS_TOPIC
from aegis_app.serving.store import Store
from aegis_app.serving.store.sink import DecisionSink
from tests.aegis_app.serving.store.test_repository import decision

BASE = 7_000_000_000


async def _produce(bootstrap: str, messages: list[tuple[str, bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for topic, key, value in messages:
            await producer.send(topic, key=key, value=value)
        await producer.flush()
    finally:
        await producer.stop()


async def _sink_until(sink: DecisionSink, done, timeout: float = 60) -> None:
    task = sink.start()
    deadline = time.monotonic() + timeout
    try:
        while not done() and time.monotonic() < deadline:
            if task.done():
                task.result()
            await asyncio.sleep(0.2)
    finally:
        await sink.stop()
    assert done(), (sink.counts, sink.last_error)


def test_sink_stores_exactly_one_row_per_transaction(broker, tmp_path):
    store = Store(f"sqlite:///{tmp_path}/sink.db")
    group = f"aegis-sink-test-{uuid.uuid4().hex[:8]}"
    ids = [BASE + i for i in range(50)]
    messages = []
    for tx_id in ids:
        body = json.dumps(decision(tx_id, "block" if tx_id % 5 == 0 else "allow")).encode()
        messages.append((DECISIONS_TOPIC, str(tx_id).encode(), body))
        if tx_id % 5 == 0:
            messages.append((ALERTS_TOPIC, str(tx_id).encode(), body))
    messages += messages[:10]  # redelivered decisions
    messages.append((DECISIONS_TOPIC, b"x", b"{not json"))
    messages.append((DEADLETTER_TOPIC, b"t/0/1", json.dumps({"reason": "test"}).encode()))

    # Stream labels: a chargeback is stored (twice on the topic, once in the store); an
    # analyst label is the API's to store; an unreadable one is counted.
    def label(tx_id: int, source: str) -> bytes:
        known = "2018-04-08 00:00:31"
        card = str(tx_id % 3)
        return Label(
            transaction_id=str(tx_id),
            label=1,
            source=source,
            known_at=known,
            tx_datetime="2018-04-01 00:00:31",
            entities={"card": card, "terminal": "7"},
            card=card,
        ).to_json()

    messages.append((LABELS_TOPIC, str(BASE).encode(), label(BASE, "chargeback")))
    messages.append((LABELS_TOPIC, str(BASE).encode(), label(BASE, "chargeback")))
    messages.append((LABELS_TOPIC, str(BASE + 1).encode(), label(BASE + 1, "analyst")))
    messages.append((LABELS_TOPIC, b"bad", b"{not json"))

    def mine() -> int:
        return sum(1 for tx_id in store.transaction_ids() if BASE <= int(tx_id) < BASE + 1000)

    try:
        asyncio.run(_produce(broker.bootstrap, messages))
        sink = DecisionSink(broker.url, store, group_id=group)
        asyncio.run(
            _sink_until(
                sink,
                lambda: (
                    mine() == len(ids)
                    and sink.counts["dead_letters"]
                    and sink.counts["unreadable_labels"]
                ),
            )
        )
        assert sink.counts["unreadable"] >= 1
        window = ("2018-04-01 00:00:00", "2018-04-02 00:00:00")
        mine_ids = {str(tx_id) for tx_id in ids}
        known = {t: v for t, v in store.labels_known(*window).items() if t in mine_ids}
        assert known == {str(BASE): 1}
        # the chargeback keeps the card and entity keys it came with
        [chargeback] = store.labels_for(str(BASE))
        assert chargeback["card"] == str(BASE % 3)
        assert chargeback["entities"] == {"card": str(BASE % 3), "terminal": "7"}
        assert store.get_decision(str(BASE))["status"] == "open"
        assert store.get_decision(str(BASE + 1))["status"] is None
        assert store.get_decision(str(BASE))["entities"] == {"card": str(BASE % 3), "terminal": "7"}
        # Replayed again and a restart of the same group: still one row per transaction.
        asyncio.run(_produce(broker.bootstrap, messages[:20]))
        again = DecisionSink(broker.url, store, group_id=group)
        asyncio.run(_sink_until(again, lambda: again.counts["decisions"] >= 15))
        assert mine() == len(ids)
        assert again.counts["decisions"] < len(messages)  # committed offsets were honoured
    finally:
        store.close()
