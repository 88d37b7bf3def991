"""Every topic the workers read or write, declared once with its serializer."""

from __future__ import annotations

from dataclasses import dataclass

import faust

from aegis_app.core import settings as names


@dataclass(frozen=True)
class Topics:
    transactions: faust.TopicT
    by_entity: faust.TopicT
    decisions: faust.TopicT
    alerts: faust.TopicT
    deadletter: faust.TopicT
    labels: faust.TopicT


def declare_topics(app: faust.App) -> Topics:
    return Topics(
        # Avro bytes, decoded by the card stage itself so bad records can be dead-lettered raw.
        transactions=app.topic(
            names.TRANSACTIONS_TOPIC, value_serializer="raw", key_serializer="raw"
        ),
        # JSON envelopes {"kind": "tx" | "label", ...} (aegis_app.core.messages), keyed by
        # the key of the entity whose state they go to (the merchant, a category, ...).
        by_entity=app.topic(names.BY_ENTITY_TOPIC, value_serializer="json", key_serializer="raw"),
        decisions=app.topic(names.DECISIONS_TOPIC, value_serializer="json", key_serializer="raw"),
        alerts=app.topic(names.ALERTS_TOPIC, value_serializer="json", key_serializer="raw"),
        deadletter=app.topic(names.DEADLETTER_TOPIC, value_serializer="json", key_serializer="raw"),
        labels=app.topic(names.LABELS_TOPIC, value_serializer="raw", key_serializer="raw"),
    )
