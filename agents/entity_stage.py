"""Entity stage: the state of every entity other than the card (the merchant, a category,
a device, ...) with its transactions and fraud labels, off the decision path.

The card stage has decided each transaction already, from this worker's replica of these
states (aegis_app/kafka/state_replica.py); here the transaction is added to the state, and
the state's changelog, which every worker's replica reads, carries it on. aegis.by-entity
is keyed by the entity's key, so an entity's transactions and labels meet in one partition.
A batch is acknowledged once its states and changelog records are written; a crash before
re-delivers it (and the state update is idempotent: a transaction id already in a state is
not counted again). The per-hop logic is the plain function `observe_entity`; `register`
wires it to whole fetches of the topic (aegis_app/kafka/batches.py), where a fetch's
transactions go to each entity's states in one call (StreamEngine.observe_many, the same
arithmetic) and each label in turn between them.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, NamedTuple

import faust
import orjson

from aegis_app.core.messages import LabelHop, TxHop, hop_from_wire
from aegis_app.core.timerules import DAY
from agents.batches import batch_inbox, run_batches
from tables.engine import StreamEngine

if TYPE_CHECKING:
    from agents.pipeline import Pipeline

log = logging.getLogger(__name__)


class Observed(NamedTuple):
    """What one hop did to an entity's state."""

    state: bytes | None  # the entity's new state
    lateness: int  # seconds the transaction arrived behind the state's newest event (labels: 0)


def observe_entity(engine: StreamEngine, hop: TxHop | LabelHop, state: bytes | None) -> Observed:
    """The entity's new state with a transaction or a label."""
    if isinstance(hop, LabelHop):
        new_state = engine.observe_label(
            hop.entity, state, hop.transaction_id, hop.tx_ts, hop.known_at, bool(hop.label)
        )
        return Observed(new_state, 0)
    new_state, lateness = engine.add_event(hop.entity, hop.record, state)
    return Observed(new_state, lateness)


def register(app: faust.App, pipeline: Pipeline) -> None:
    topics, counters, engine = pipeline.topics, pipeline.counters, pipeline.engine
    counts, states = counters.counts, pipeline.states
    delay_days = pipeline.config.label_delay_days
    source = topics.by_entity.get_topic_name()
    inbox = batch_inbox(app, pipeline.settings, topics.by_entity)

    async def observe_entities(messages: list) -> None:
        """One fetch's hops: each entity's state read and written once, the transactions
        added in one compiled call per entity between two labels (a label applies to the
        state as the transactions before it left it)."""
        # entity -> (partition, key) -> its state after this batch
        written: dict[str, dict[tuple[int, str], bytes]] = {e: {} for e in states}
        waiting: list[tuple[object, TxHop, tuple[int, str]]] = []  # transactions, in order
        failed: list[tuple[object, str]] = []  # (message, reason)

        def state_of(entity: str, slot: tuple[int, str]) -> bytes | None:
            done = written[entity]
            return done[slot] if slot in done else states[entity].lookup_in(*slot)

        def add_waiting() -> None:
            for entity in {hop.entity for _, hop, _ in waiting}:
                mine = [(m, hop, slot) for m, hop, slot in waiting if hop.entity == entity]
                slots = [slot for _, _, slot in mine]
                try:
                    added = engine.observe_many(
                        entity,
                        [hop.record for _, hop, _ in mine],
                        slots,
                        {slot: state_of(entity, slot) for slot in set(slots)},
                        features=False,
                    )
                except Exception as exc:  # a bug: these hops fail, the stream goes on
                    log.exception("%s: %d transactions not added", entity, len(mine))
                    failed.extend((m, f"entity state error: {exc!r}") for m, _, _ in mine)
                    continue
                written[entity].update(added.states)
                for (message, _, _), error, late in zip(mine, added.errors, added.lateness):
                    if error is not None:
                        failed.append((message, f"entity state error: {error!r}"))
                        continue
                    counters.saw_lateness(int(late))
                    if late >= delay_days * DAY:
                        counts["late_beyond_label_delay"] += 1
            waiting.clear()

        for message in messages:
            counts["entity_stage_in"] += 1
            raw_key = message.key
            key = raw_key.decode() if isinstance(raw_key, bytes) else str(raw_key)
            try:
                hop = hop_from_wire(orjson.loads(message.value))
                slot = (message.partition, key)
                if isinstance(hop, TxHop):
                    waiting.append((message, hop, slot))
                    continue
                add_waiting()
                new_state = observe_entity(engine, hop, state_of(hop.entity, slot)).state
            except Exception as exc:  # one bad message must not stop every entity
                log.exception("entity key %s: state update failed", key)
                failed.append((message, f"entity state error: {exc!r}"))
                continue
            if new_state is not None:
                written[hop.entity][slot] = new_state
        add_waiting()
        for message, reason in failed:
            await pipeline.dead_letters.send(message.value, reason, source, message=message)
        for entity, writes in written.items():
            if writes:
                await states[entity].put_many_in(writes)
        counts["entity_hops_written"] += len(messages)  # queued for the changelogs

    @app.task
    async def entity_stage() -> None:
        await run_batches(app, inbox, observe_entities)
