"""Entity stage: the state of every entity other than the card (the merchant, a category,
a device, ...) and its fraud labels; the last entity of a transaction hands it, with its
full feature vector, to the micro-batch scorer.

aegis.by-entity is keyed by the entity's key, so an entity's transactions and labels meet
in one partition. Acks are manual: an event is acknowledged only after it is passed on or
its decision is published, so a crash in between re-delivers it (and the state update is
idempotent: a transaction id already in a state is answered as the first time). The
per-event logic is the plain function `observe_entity`; `register` wires it to whole
fetches of the topic (aegis_app/kafka/batches.py).
"""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING, NamedTuple

import faust
import orjson

from aegis_app.core.codec import json_safe
from aegis_app.core.messages import LabelHop, ScoreRequest, TxHop, hop_from_wire
from aegis_app.core.settings import BY_ENTITY_TOPIC
from aegis_app.core.timerules import DAY
from aegis_app.kafka import raw_producer
from agents.batches import batch_inbox, run_batches
from tables.engine import StreamEngine

if TYPE_CHECKING:
    from agents.pipeline import Pipeline

log = logging.getLogger(__name__)


class Observed(NamedTuple):
    """What one hop did to an entity's state."""

    state: bytes | None  # the entity's new state
    following: TxHop | ScoreRequest | None  # the next hop, the request to score, or nothing
    lateness: int  # seconds the transaction arrived behind the state's newest event (labels: 0)


def observe_entity(engine: StreamEngine, hop: TxHop | LabelHop, state: bytes | None) -> Observed:
    """The entity's new state, and what follows: the hop to the next entity, the request to
    be scored (the last entity), or nothing (a label)."""
    if isinstance(hop, LabelHop):
        new_state = engine.observe_label(
            hop.entity, state, hop.transaction_id, hop.tx_ts, hop.known_at, bool(hop.label)
        )
        return Observed(new_state, None, 0)
    entity = hop.pending[0]
    features, new_state, lateness = engine.observe_entity_arrival(entity, hop.record, state)
    passed = hop.passed_on(json_safe(features))
    if passed.pending:
        return Observed(new_state, passed, lateness)
    parts = {**passed.features, **engine.transaction_features(hop.record)}
    request = ScoreRequest(
        tx=hop.record, features=engine.assemble(parts), ingested_ms=hop.ingested_ms
    )
    return Observed(new_state, request, lateness)


def hop_entity(hop: TxHop | LabelHop) -> str:
    """The entity whose state a hop goes to."""
    return hop.entity if isinstance(hop, LabelHop) else hop.pending[0]


def register(app: faust.App, pipeline: Pipeline) -> None:
    topics, counters, engine = pipeline.topics, pipeline.counters, pipeline.engine
    counts, states = counters.counts, pipeline.states
    delay_days = pipeline.config.label_delay_days
    source = topics.by_entity.get_topic_name()
    inbox = batch_inbox(app, pipeline.settings, topics.by_entity)

    async def observe_entities(messages: list) -> None:
        """One fetch's hops: each entity's state read and written once, the hops that go on
        sent, the finished transactions queued for scoring (acknowledged once decided)."""
        # entity -> (partition, key) -> its state after this batch
        entity_states: dict[str, dict[tuple[int, str], bytes]] = {e: {} for e in states}
        onward: list[tuple[bytes, bytes]] = []
        scored: list[tuple[ScoreRequest, object]] = []
        done: list = []  # messages acknowledged once this batch's hops are sent
        for message in messages:
            counts["entity_stage_in"] += 1
            raw_key = message.key
            key = raw_key.decode() if isinstance(raw_key, bytes) else str(raw_key)
            try:
                hop = hop_from_wire(orjson.loads(message.value))
                entity = hop_entity(hop)
                written, slot = entity_states[entity], (message.partition, key)
                state = written[slot] if slot in written else states[entity].lookup_in(*slot)
                new_state, following, lateness = observe_entity(engine, hop, state)
                if isinstance(hop, TxHop):
                    counters.saw_lateness(lateness)
                    if lateness >= delay_days * DAY:
                        counts["late_beyond_label_delay"] += 1
            except Exception as exc:  # one bad message must not stop every entity
                log.exception("entity key %s: state update failed", key)
                await pipeline.dead_letters.send(
                    message.value, f"entity state error: {exc!r}", source, message=message
                )
                done.append(message)
                continue
            if new_state is not None:
                written[slot] = new_state
            if isinstance(following, ScoreRequest):
                scored.append((following, message))
                continue
            if isinstance(following, TxHop):
                next_key = engine.keys(following.record)[following.pending[0]]
                onward.append((str(next_key).encode(), raw_producer.dumps(following.to_wire())))
            done.append(message)
        for entity, writes in entity_states.items():
            if writes:
                await states[entity].put_many_in(writes)
        await raw_producer.send_many(app, BY_ENTITY_TOPIC, onward)
        inbox.done(done)
        for request, message in scored:
            await pipeline.scorer.submit(request, partial(inbox.done, (message,)))

    @app.task
    async def entity_stage() -> None:
        # observe_entities acknowledges (the scored messages once they are decided).
        await run_batches(app, inbox, observe_entities, acknowledge=False)
