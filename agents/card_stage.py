"""Card stage: decode and validate, update the card's state, forward by terminal.

Input aegis.transactions is keyed by card, so a card's transactions arrive in order
here, which the card windows need (same-second transactions count in arrival order).
"""

from __future__ import annotations

import logging

from aegis_app.core import codec
from aegis_app.core.records import InvalidRecord
from aegis_app.core.settings import BY_TERMINAL_TOPIC
from aegis_app.kafka import raw_producer
from aegis_app.worker.app import app, settings
from agents import topics
from agents.counters import counts
from agents.deadletter import dead_letter
from agents.state import card_state
from tables.features import CardState

log = logging.getLogger(__name__)


@app.agent(topics.transactions)
async def card_stage(stream):
    async for event in stream.events():
        payload = event.value
        counts["transactions_in"] += 1
        try:
            tx = codec.decode(payload, settings.max_record_bytes)
        except InvalidRecord as exc:
            await dead_letter(payload, str(exc), topics.transactions.get_topic_name(), event)
            continue
        card_key = str(tx.customer_id)
        if event.key != card_key.encode():
            # Keyed by something else: re-publish under the card key so that the card's
            # state lives in exactly one partition. Counted once, when it comes back.
            counts["transactions_in"] -= 1
            counts["rekeyed"] += 1
            await topics.transactions.send(key=card_key.encode(), value=payload)
            continue
        try:
            state = CardState.from_value(card_state.lookup(card_key))
            card_features = state.observe(tx.transaction_id, tx.ts, tx.tx_amount, tx.terminal_id)
        except Exception as exc:  # corrupt state must not stop the stream for every card
            log.exception("card %s: state update failed", card_key)
            await dead_letter(
                payload, f"card state error: {exc!r}", topics.transactions.get_topic_name(), event
            )
            continue
        await card_state.put(card_key, state.to_value())
        await raw_producer.send(
            app,
            BY_TERMINAL_TOPIC,
            str(tx.terminal_id).encode(),
            raw_producer.dumps(
                {
                    "kind": "tx",
                    "tx": {**tx.to_wire(), "ts": tx.ts},
                    "card": card_features,
                    "ingested_ms": int(event.message.timestamp * 1000),
                    "source_partition": event.message.partition,
                }
            ),
        )
