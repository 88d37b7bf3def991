"""Labels in: route each label to its terminal's partition of the terminal stage."""

from __future__ import annotations

from aegis_app.core import labels as label_records
from aegis_app.core.records import InvalidRecord, parse_datetime
from aegis_app.worker.app import app
from agents import topics
from agents.counters import counts
from agents.deadletter import dead_letter


@app.agent(topics.labels)
async def route_labels(stream):
    async for event in stream.events():
        try:
            label = label_records.parse(event.value)
        except InvalidRecord as exc:
            await dead_letter(event.value, str(exc), topics.labels.get_topic_name(), event)
            continue
        counts["labels_in"] += 1
        await topics.by_terminal.send(
            key=str(label.terminal_id).encode(),
            value={
                "kind": "label",
                "label": {
                    "transaction_id": label.transaction_id,
                    "label": label.label,
                    "tx_ts": parse_datetime(label.tx_datetime),
                    "known_at": parse_datetime(label.known_at),
                },
            },
        )
