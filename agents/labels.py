"""Labels in: route each label to the state of every entity with label-based features
(the merchant's partition of the entity stage, a category's, ...).

The per-event logic is the plain function `route_label`; `register` wires it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import faust

from aegis_app.core import labels as label_records
from aegis_app.core.messages import LabelHop, Refusal
from aegis_app.core.records import InvalidRecord, parse_datetime

if TYPE_CHECKING:
    from agents.pipeline import Pipeline


def route_label(
    payload: bytes | None, label_entities: tuple[str, ...]
) -> list[tuple[bytes, LabelHop]] | Refusal:
    """(entity key, message) for each entity of `label_entities` the label names a key
    for, or why it is refused (not a label, or a key for none of them)."""
    try:
        label = label_records.parse(payload)
    except InvalidRecord as exc:
        return Refusal(str(exc))
    routes = []
    for entity in label_entities:
        key = label.entities.get(entity)
        if key is None:
            continue
        hop = LabelHop(
            entity=entity,
            transaction_id=label.transaction_id,
            label=label.label,
            tx_ts=parse_datetime(label.tx_datetime),
            known_at=parse_datetime(label.known_at),
        )
        routes.append((key.encode(), hop))
    if label_entities and not routes:
        return Refusal(
            f"label.entities: no key for {', '.join(label_entities)} (the entities whose "
            "label-based features take labels); a label names its transaction's keys"
        )
    return routes


def register(app: faust.App, pipeline: Pipeline) -> None:
    topics, counts = pipeline.topics, pipeline.counters.counts
    source = topics.labels.get_topic_name()
    label_entities = pipeline.engine.label_entities

    @app.agent(topics.labels, name="route_labels")
    async def route_labels(stream):
        async for event in stream.events():
            routed = route_label(event.value, label_entities)
            if isinstance(routed, Refusal):
                await pipeline.dead_letters.send(event.value, routed.reason, source, event)
                continue
            counts["labels_in"] += 1
            for key, hop in routed:
                await topics.by_entity.send(key=key, value=hop.to_wire())
