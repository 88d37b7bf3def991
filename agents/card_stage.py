"""Card stage: decode and validate, update the card's state, forward by terminal.

Input aegis.transactions is keyed by card, so a card's transactions arrive in order
here, which the card windows need (same-second transactions count in arrival order).
The per-event logic is in the plain functions `read_transaction` and `observe_card`;
`register` wires them to the stream.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import faust

from aegis_app.core import codec
from aegis_app.core.messages import Refusal, Rekey, TxHop
from aegis_app.core.records import InvalidRecord, Transaction
from aegis_app.core.settings import BY_TERMINAL_TOPIC
from aegis_app.kafka import raw_producer
from tables.features import CardState

if TYPE_CHECKING:
    from agents.pipeline import Pipeline

log = logging.getLogger(__name__)


def card_key(tx: Transaction) -> str:
    """The key a transaction's card state is kept under (and its input record keyed by)."""
    return str(tx.customer_id)


def read_transaction(
    payload: bytes | None, record_key: bytes | None, max_bytes: int
) -> Transaction | Refusal | Rekey:
    """The validated transaction of an input record; a Refusal (with the reason) if it is
    not one; a Rekey if it is keyed by something other than its card."""
    try:
        tx = codec.decode(payload, max_bytes)
    except InvalidRecord as exc:
        return Refusal(str(exc))
    key = card_key(tx)
    if record_key != key.encode():
        return Rekey(key)
    return tx


def observe_card(
    tx: Transaction, state_value: Any, ingested_ms: int, source_partition: int | None
) -> tuple[list, TxHop]:
    """The card's new state value and the message for the terminal stage."""
    state = CardState.from_value(state_value)
    card_features = state.observe(tx.transaction_id, tx.ts, tx.tx_amount, tx.terminal_id)
    hop = TxHop(
        tx={**tx.to_wire(), "ts": tx.ts},
        card=card_features,
        ingested_ms=ingested_ms,
        source_partition=source_partition,
    )
    return state.to_value(), hop


def register(app: faust.App, pipeline: Pipeline) -> None:
    topics, counts = pipeline.topics, pipeline.counters.counts
    card_state, dead_letters = pipeline.card_state, pipeline.dead_letters
    max_bytes = pipeline.settings.max_record_bytes
    source = topics.transactions.get_topic_name()

    @app.agent(topics.transactions, name="card_stage")
    async def card_stage(stream):
        async for event in stream.events():
            payload = event.value
            counts["transactions_in"] += 1
            read = read_transaction(payload, event.key, max_bytes)
            if isinstance(read, Refusal):
                await dead_letters.send(payload, read.reason, source, event)
                continue
            if isinstance(read, Rekey):
                # Counted once, when it comes back under its card key.
                counts["transactions_in"] -= 1
                counts["rekeyed"] += 1
                await topics.transactions.send(key=read.card_key.encode(), value=payload)
                continue
            tx, key = read, card_key(read)
            try:
                state_value, hop = observe_card(
                    tx,
                    card_state.lookup(key),
                    int(event.message.timestamp * 1000),
                    event.message.partition,
                )
            except Exception as exc:  # corrupt state must not stop the stream for every card
                log.exception("card %s: state update failed", key)
                await dead_letters.send(payload, f"card state error: {exc!r}", source, event)
                continue
            await card_state.put(key, state_value)
            await raw_producer.send(
                app,
                BY_TERMINAL_TOPIC,
                str(tx.terminal_id).encode(),
                raw_producer.dumps(hop.to_wire()),
            )
