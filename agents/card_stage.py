"""Card stage: decode and check the record in the user's schema, update the card's state,
compute the whole feature vector and hand the transaction to the scorer; then send it on to
the other entities' states.

This is the decision path's only consumed record (one hop). Input aegis.transactions is
keyed by card, so a card's transactions arrive in order here, which the card windows need
(same-second transactions count in arrival order). The other entities' features (the
merchant's, ...) are read from this worker's replicas of their states
(aegis_app/kafka/state_replica.py), which their own stage (agents/entity_stage.py) keeps
up to date off the decision path. The per-event logic is in the plain functions
`read_transaction` and `observe_transactions` (a whole fetch at once); `register` wires
them to the fetches.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple

import faust

from aegis_app.core.codec import RecordCodec, json_safe
from aegis_app.core.messages import Refusal, Rekey, ScoreRequest, TxHop
from aegis_app.core.records import InvalidRecord
from aegis_app.core.settings import BY_ENTITY_TOPIC
from aegis_app.kafka import raw_producer
from agents.batches import batch_inbox, run_batches
from agents.deferred_sends import DeferredSends, after_calls
from tables.engine import EntityBatch, StreamEngine

if TYPE_CHECKING:
    from agents.pipeline import Pipeline

log = logging.getLogger(__name__)
# How long what the card stage sends off the decision path (hops to the other entities'
# states, the card states' changelog records) gathers before it is sent together.
OFF_PATH_INTERVAL_S = 0.1


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

    request: ScoreRequest  # the transaction with its whole feature vector, to be decided
    hops: list[TxHop]  # one per further entity with a key, for its state (off the path)
    keys: dict[str, str | None]  # the transaction's entity keys (StreamEngine.keys)


class ObservedBatch(NamedTuple):
    """What the card stage makes of a batch of transactions."""

    card_states: dict[Hashable, bytes]  # card slot -> the card's state after the batch
    outcomes: list[Observed | Exception]  # per transaction: observed, or why it cannot be


def observe_transactions(
    engine: StreamEngine,
    card_entity: str,
    records: Sequence[dict[str, Any]],
    card_slots: Sequence[Hashable | None],
    card_states: Mapping[Hashable, bytes | None],
    others: Mapping[str, Mapping[str, bytes | None]],
    ingested_ms: Sequence[int | None],
    keys: Sequence[dict[str, str | None]] | None = None,
) -> ObservedBatch:
    """The cards' new states, the requests to score and the hops to the other entities'
    states, for a batch of transactions in arrival order. `card_slots[i]` names the card
    state transaction i reads and updates (`card_states`: each as it was before the batch);
    `others`: each other entity's states by key (the replica's), read as they stand, not
    changed. A transaction that cannot be used (RecordError, StateError) has its error as
    its outcome and changes no state. `keys`: each record's StreamEngine.keys, if known."""
    keys = keys or [engine.keys(record) for record in records]
    parts: list[EntityBatch] = []
    failed: set[int] = set()
    for entity in engine.entities:
        if entity == card_entity:
            continue
        # No key: NaN features, no state (StreamEngine's rule); read as against no state.
        entity_keys = [k[entity] for k in keys]
        part = engine.observe_many(entity, records, entity_keys, others.get(entity, {}), keep=False)
        failed.update(i for i, error in enumerate(part.errors) if error is not None)
        parts.append(part)
    # A transaction another entity cannot read is left out of its card's state too.
    slots = [None if i in failed else slot for i, slot in enumerate(card_slots)]
    card = engine.observe_many(card_entity, records, slots, card_states)
    features = engine.assemble_many(records, [card, *parts])
    outcomes: list[Observed | Exception] = []
    others_kept = [e for e in engine.entities if e != card_entity]
    for record, record_keys, vector, ingested in zip(records, keys, features, ingested_ms):
        if isinstance(vector, Exception):
            outcomes.append(vector)
            continue
        safe = json_safe(record)
        hops = [TxHop(entity=e, record=safe) for e in others_kept if record_keys[e] is not None]
        outcomes.append(
            Observed(
                ScoreRequest(tx=safe, features=vector, ingested_ms=ingested), hops, record_keys
            )
        )
    return ObservedBatch(card.states, outcomes)


def register(app: faust.App, pipeline: Pipeline) -> None:
    topics, counts = pipeline.topics, pipeline.counters.counts
    engine, codec, dead_letters = pipeline.engine, pipeline.codec, pipeline.dead_letters
    card_entity = pipeline.card_entity
    card_state = pipeline.states[card_entity]
    replicas = pipeline.replicas
    max_bytes = pipeline.settings.max_record_bytes
    source = topics.transactions.get_topic_name()
    inbox = batch_inbox(app, pipeline.settings, topics.transactions)
    most = 4 * pipeline.settings.stage_batch_size
    interval = OFF_PATH_INTERVAL_S
    hop_sends = DeferredSends.to_topic(app, BY_ENTITY_TOPIC, interval, max_records=most)
    # The card states' changelog records wait likewise (the states are written at once).
    changelog_sends = DeferredSends(card_state.send_changelog, interval, max_records=most)
    pipeline.hop_sends, pipeline.changelog_sends = hop_sends, changelog_sends

    async def decide_cards(messages: list) -> None:
        """One fetch's transactions, observed as one batch: card states read and written
        once per card, the other entities' states read from the replicas, each
        transaction queued for its decision (acknowledged once decided) and sent on to the
        other entities' states."""
        done: list = []  # refused or re-keyed: acknowledged once the card states are written
        records: list[dict[str, Any]] = []
        taken: list = []  # the message of each record
        for message in messages:
            payload = message.value
            counts["transactions_in"] += 1
            read = read_transaction(codec, payload, message.key, max_bytes)
            if isinstance(read, Refusal):
                await dead_letters.send(payload, read.reason, source, message=message)
                done.append(message)
            elif isinstance(read, Rekey):
                # Counted once, when it comes back under its card key.
                counts["transactions_in"] -= 1
                counts["rekeyed"] += 1
                await topics.transactions.send(key=read.card_key.encode(), value=payload)
                done.append(message)
            else:
                records.append(read)
                taken.append(message)
        observed = observe_fetch(records, taken)
        changelog = card_state.write_many_in(observed.card_states)
        inbox.done(done)
        requests: list[ScoreRequest] = []
        decided: list = []  # the messages of the requests
        hops: list[tuple[bytes, bytes]] = []
        for message, outcome in zip(taken, observed.outcomes):
            if isinstance(outcome, Exception):
                await dead_letters.send(message.value, str(outcome), source, message=message)
                inbox.done((message,))
                continue
            for hop in outcome.hops:
                hop_key = str(outcome.keys[hop.entity]).encode()
                hops.append((hop_key, raw_producer.dumps(hop.to_wire())))
            requests.append(outcome.request)
            decided.append(message)
        # The fetch's messages are acknowledged together once each of its requests is
        # decided and what it sends off the path (hops, the card states' changelog) is
        # sent too (agents/deferred_sends.py).
        ack = after_calls(
            len(requests) + bool(hops) + bool(changelog), partial(inbox.done, decided)
        )
        for sends, items in ((hop_sends, hops), (changelog_sends, changelog)):
            if items:
                sends.add(items, [ack] if requests else [])
                if sends.full:
                    await sends.flush()
        if requests:
            await pipeline.scorer.submit_many([(request, ack) for request in requests])

    def observe_fetch(records: list[dict[str, Any]], taken: list) -> ObservedBatch:
        """observe_transactions with the states it needs. Should the batch fail as a whole
        (a bug, not a record or state the engine refuses), it is observed again record by
        record, so that only the records it fails on are dead-lettered and the stream goes
        on for every other card."""
        if not records:
            return ObservedBatch({}, [])
        try:
            return observe_with_states(records, taken, {})
        except Exception:
            log.exception("a batch of %d transactions failed: again one by one", len(records))
        written: dict[Hashable, bytes] = {}
        outcomes: list[Observed | Exception] = []
        for record, message in zip(records, taken):
            try:
                one = observe_with_states([record], [message], written)
            except Exception as exc:
                log.exception("card %s: state update failed", record.get(card_entity))
                outcomes.append(RuntimeError(f"card state error: {exc!r}"))
                continue
            written.update(one.card_states)
            outcomes += one.outcomes
        return ObservedBatch(written, outcomes)

    def observe_with_states(
        records: list[dict[str, Any]], taken: list, written: Mapping[Hashable, bytes]
    ) -> ObservedBatch:
        """observe_transactions against the card states as stored (or as `written` since)
        and the replicas' states as they stand."""
        keys = [engine.keys(record) for record in records]
        # No card key: no slot (NaN card features, no state).
        slots = [
            None if k[card_entity] is None else (m.partition, k[card_entity])
            for m, k in zip(taken, keys)
        ]
        card_states = {
            slot: written[slot] if slot in written else card_state.lookup_in(*slot)
            for slot in set(slots)
            if slot is not None
        }
        others = {
            entity: {k[entity]: replica.get(k[entity]) for k in keys if k[entity] is not None}
            for entity, replica in replicas.items()
        }
        ingested = [int(m.timestamp * 1000) for m in taken]
        return observe_transactions(
            engine, card_entity, records, slots, card_states, others, ingested, keys
        )

    @app.task
    async def send_hops() -> None:
        await hop_sends.run()

    @app.task
    async def send_card_changelog() -> None:
        await changelog_sends.run()

    @app.task
    async def card_stage() -> None:
        # Decide nothing before every replica has read its changelog up to the end once.
        for replica in replicas.values():
            await replica.replica.caught_up.wait()
        # decide_cards acknowledges (the decided messages once they are published).
        await run_batches(app, inbox, decide_cards, acknowledge=False)
