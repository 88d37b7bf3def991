"""Card stage: decode and check the record in the user's schema, update the card's state,
compute the whole feature vector and hand the transaction to the scorer; then send it on to
the other entities' states.

This is the decision path's only consumed record (one hop). Input aegis.transactions is
keyed by card, so a card's transactions arrive in order here, which the card windows need
(same-second transactions count in arrival order). The other entities' features (the
merchant's, ...) are read from this worker's replicas of their states
(aegis_app/kafka/state_replica.py), which their own stage (agents/entity_stage.py) keeps
up to date off the decision path. The per-event logic is in the plain functions
`read_transaction` and `observe_transaction`; `register` wires them to whole fetches.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple

import faust

from aegis_app.core.codec import RecordCodec, json_safe
from aegis_app.core.messages import Refusal, Rekey, ScoreRequest, TxHop
from aegis_app.core.records import InvalidRecord
from aegis_app.core.settings import BY_ENTITY_TOPIC
from aegis_app.kafka import raw_producer
from agents.batches import batch_inbox, run_batches
from agents.deferred_sends import DeferredSends, on_second_call
from tables.engine import RecordError, StreamEngine
from tables.engine.state import StateError

if TYPE_CHECKING:
    from agents.pipeline import Pipeline

log = logging.getLogger(__name__)
# How long hops to the other entities' states gather before they are sent together.
HOP_INTERVAL_S = 0.1


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


class Observed(NamedTuple):
    """What the card stage makes of one transaction."""

    card_state: bytes | None  # the card's new state (None: the record has no card key)
    request: ScoreRequest  # the transaction with its whole feature vector, to be decided
    hops: list[TxHop]  # one per further entity with a key, for its state (off the path)


def observe_transaction(
    engine: StreamEngine,
    card_entity: str,
    record: dict[str, Any],
    card_state: bytes | None,
    others: Mapping[str, bytes | None],
    ingested_ms: int | None,
) -> Observed:
    """The card's new state, the request to score and the hops to the other entities'
    states. `others`: the state of each other entity (the replica's), as it stands; they
    are read, not changed (RecordError, StateError if the record or a state cannot be
    used)."""
    parts, new_state = engine.observe_entity(card_entity, record, card_state)
    keys = engine.keys(record)
    safe = json_safe(record)
    hops: list[TxHop] = []
    for entity in engine.entities:
        if entity == card_entity:
            continue
        # No key: NaN features, no state (StreamEngine's rule); read as against no state.
        parts.update(engine.features_against(entity, record, others.get(entity)))
        if keys[entity] is not None:
            hops.append(TxHop(entity=entity, record=safe))
    parts.update(engine.transaction_features(record))
    request = ScoreRequest(tx=safe, features=engine.assemble(parts), ingested_ms=ingested_ms)
    return Observed(new_state, request, hops)


def register(app: faust.App, pipeline: Pipeline) -> None:
    topics, counts = pipeline.topics, pipeline.counters.counts
    engine, codec, dead_letters = pipeline.engine, pipeline.codec, pipeline.dead_letters
    card_entity = pipeline.card_entity
    card_state = pipeline.states[card_entity]
    replicas = pipeline.replicas
    max_bytes = pipeline.settings.max_record_bytes
    source = topics.transactions.get_topic_name()
    inbox = batch_inbox(app, pipeline.settings, topics.transactions)
    hop_sends = DeferredSends(
        app, BY_ENTITY_TOPIC, HOP_INTERVAL_S, max_records=4 * pipeline.settings.stage_batch_size
    )
    pipeline.hop_sends = hop_sends

    async def decide_cards(messages: list) -> None:
        """One fetch's transactions: card states read and written once per card, the
        other entities' states read from the replicas, each transaction queued for its
        decision (acknowledged once decided) and sent on to the other entities' states."""
        states: dict[tuple[int, str], bytes] = {}  # (partition, card) -> state after the batch
        hops: list[tuple[bytes, bytes]] = []
        # Each request with its acknowledgement: once decided and, if the transaction has
        # hops, once they are sent too (agents/deferred_sends.py).
        requests: list[tuple[ScoreRequest, Callable[[], object]]] = []
        hop_acks: list[Callable[[], object]] = []
        done: list = []  # refused or re-keyed: acknowledged once the card states are written
        for message in messages:
            payload = message.value
            counts["transactions_in"] += 1
            read = read_transaction(codec, payload, message.key, max_bytes)
            if isinstance(read, Refusal):
                await dead_letters.send(payload, read.reason, source, message=message)
                done.append(message)
                continue
            if isinstance(read, Rekey):
                # Counted once, when it comes back under its card key.
                counts["transactions_in"] -= 1
                counts["rekeyed"] += 1
                await topics.transactions.send(key=read.card_key.encode(), value=payload)
                done.append(message)
                continue
            record = read
            keys = engine.keys(record)
            key, slot = keys[card_entity], (message.partition, keys[card_entity])
            state = states[slot] if slot in states else card_state.lookup_in(*slot)
            try:
                others = {
                    entity: replica.get(keys[entity])
                    for entity, replica in replicas.items()
                    if keys[entity] is not None
                }
                observed = observe_transaction(
                    engine, card_entity, record, state, others, int(message.timestamp * 1000)
                )
            except (RecordError, StateError) as exc:
                await dead_letters.send(payload, str(exc), source, message=message)
                done.append(message)
                continue
            except Exception as exc:  # corrupt state must not stop the stream for every card
                log.exception("card %s: state update failed", key)
                await dead_letters.send(
                    payload, f"card state error: {exc!r}", source, message=message
                )
                done.append(message)
                continue
            if observed.card_state is not None:
                states[slot] = observed.card_state
            for hop in observed.hops:
                hop_key = str(keys[hop.entity]).encode()
                hops.append((hop_key, raw_producer.dumps(hop.to_wire())))
            ack = partial(inbox.done, (message,))
            if observed.hops:
                ack = on_second_call(ack)
                hop_acks.append(ack)
            requests.append((observed.request, ack))
        await card_state.put_many_in(states)
        inbox.done(done)
        hop_sends.add(hops, hop_acks)
        if hop_sends.full:
            await hop_sends.flush()
        for request, ack in requests:
            await pipeline.scorer.submit(request, ack)

    @app.task
    async def send_hops() -> None:
        await hop_sends.run()

    @app.task
    async def card_stage() -> None:
        # Decide nothing before every replica has read its changelog up to the end once.
        for replica in replicas.values():
            await replica.replica.caught_up.wait()
        # decide_cards acknowledges (the decided messages once they are published).
        await run_batches(app, inbox, decide_cards, acknowledge=False)
