"""Card stage: decode and check the record in the user's schema, update the card's state,
and pass the transaction on to the next entity's state.

Input aegis.transactions is keyed by card, so a card's transactions arrive in order here,
which the card windows need (same-second transactions count in arrival order). The
per-event logic is in the plain functions `read_transaction` and `observe_card`;
`register` wires them to the stream.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import faust

from aegis_app.core.codec import RecordCodec, json_safe
from aegis_app.core.messages import Refusal, Rekey, TxHop
from aegis_app.core.records import InvalidRecord
from aegis_app.core.settings import BY_ENTITY_TOPIC
from aegis_app.kafka import raw_producer
from agents.batches import batch_inbox, run_batches
from tables.engine import RecordError, StreamEngine
from tables.engine.state import StateError

if TYPE_CHECKING:
    from agents.pipeline import Pipeline

log = logging.getLogger(__name__)


def read_transaction(
    codec: RecordCodec, payload: bytes | None, record_key: bytes | None, max_bytes: int
) -> dict[str, Any] | Refusal | Rekey:
    """The normalised record of an input message; a Refusal (with the reason) if it is not
    one; a Rekey if it is keyed by something other than its card."""
    try:
        record = codec.decode(payload, max_bytes)
    except InvalidRecord as exc:
        return Refusal(str(exc))
    key = codec.key(record)
    if record_key != key:
        return Rekey(key.decode())
    return record


def observe_card(
    engine: StreamEngine,
    card_entity: str,
    record: dict[str, Any],
    state: bytes | None,
    ingested_ms: int | None,
) -> tuple[bytes | None, TxHop]:
    """The card's new state and the hop to the next entity (RecordError, StateError if the
    record or the stored state cannot be used)."""
    features, new_state = engine.observe_entity(card_entity, record, state)
    keys = engine.keys(record)
    pending = [e for e in engine.entities if e != card_entity and keys[e] is not None]
    # An entity the record has no key for: NaN features, no state (StreamEngine's rule).
    for entity in engine.entities:
        if entity != card_entity and keys[entity] is None:
            features.update(engine.observe_entity(entity, record, None)[0])
    hop = TxHop(
        record=json_safe(record),
        features=json_safe(features),
        pending=pending,
        ingested_ms=ingested_ms,
    )
    return new_state, hop


def register(app: faust.App, pipeline: Pipeline) -> None:
    topics, counts = pipeline.topics, pipeline.counters.counts
    engine, codec, dead_letters = pipeline.engine, pipeline.codec, pipeline.dead_letters
    card_entity = pipeline.card_entity
    card_state = pipeline.states[card_entity]
    max_bytes = pipeline.settings.max_record_bytes
    source = topics.transactions.get_topic_name()
    inbox = batch_inbox(app, pipeline.settings, topics.transactions)

    async def decide_cards(messages: list) -> None:
        """One fetch's transactions: card states read and written once per card, one hop
        per transaction to its next entity."""
        states: dict[tuple[int, str], bytes] = {}  # (partition, card) -> state after the batch
        hops: list[tuple[bytes, bytes]] = []
        for message in messages:
            payload = message.value
            counts["transactions_in"] += 1
            read = read_transaction(codec, payload, message.key, max_bytes)
            if isinstance(read, Refusal):
                await dead_letters.send(payload, read.reason, source, message=message)
                continue
            if isinstance(read, Rekey):
                # Counted once, when it comes back under its card key.
                counts["transactions_in"] -= 1
                counts["rekeyed"] += 1
                await topics.transactions.send(key=read.card_key.encode(), value=payload)
                continue
            record = read
            keys = engine.keys(record)
            key, slot = keys[card_entity], (message.partition, keys[card_entity])
            state = states[slot] if slot in states else card_state.lookup_in(*slot)
            try:
                new_state, hop = observe_card(
                    engine, card_entity, record, state, int(message.timestamp * 1000)
                )
            except (RecordError, StateError) as exc:
                await dead_letters.send(payload, str(exc), source, message=message)
                continue
            except Exception as exc:  # corrupt state must not stop the stream for every card
                log.exception("card %s: state update failed", key)
                await dead_letters.send(
                    payload, f"card state error: {exc!r}", source, message=message
                )
                continue
            if new_state is not None:
                states[slot] = new_state
            hops.append((str(keys[hop.pending[0]]).encode(), raw_producer.dumps(hop.to_wire())))
        await card_state.put_many_in(states)
        await raw_producer.send_many(app, BY_ENTITY_TOPIC, hops)

    @app.task
    async def card_stage() -> None:
        await run_batches(app, inbox, decide_cards)
