"""Labels in: route each label to its terminal's partition of the terminal stage.

The per-event logic is the plain function `route_label`; `register` wires it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import faust

from aegis_app.core import labels as label_records
from aegis_app.core.messages import LabelHop, Refusal
from aegis_app.core.records import InvalidRecord, parse_datetime

if TYPE_CHECKING:
    from agents.pipeline import Pipeline


def route_label(payload: bytes | None) -> tuple[bytes, LabelHop] | Refusal:
    """The terminal key and the message for a label record, or why it is refused."""
    try:
        label = label_records.parse(payload)
    except InvalidRecord as exc:
        return Refusal(str(exc))
    hop = LabelHop(
        transaction_id=label.transaction_id,
        label=label.label,
        tx_ts=parse_datetime(label.tx_datetime),
        known_at=parse_datetime(label.known_at),
    )
    return str(label.terminal_id).encode(), hop


def register(app: faust.App, pipeline: Pipeline) -> None:
    topics, counts = pipeline.topics, pipeline.counters.counts
    source = topics.labels.get_topic_name()

    @app.agent(topics.labels, name="route_labels")
    async def route_labels(stream):
        async for event in stream.events():
            routed = route_label(event.value)
            if isinstance(routed, Refusal):
                await pipeline.dead_letters.send(event.value, routed.reason, source, event)
                continue
            counts["labels_in"] += 1
            key, hop = routed
            await topics.by_terminal.send(key=key, value=hop.to_wire())
