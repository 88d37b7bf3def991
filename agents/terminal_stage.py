"""Terminal stage: terminal state and delayed fraud labels; hands each transaction,
with its full feature vector, to the micro-batch scorer.

Acks are manual here: an event is acknowledged only after its decision is published,
so a crash between the two re-delivers it (and the state update is idempotent). The
per-event logic is the plain function `observe_terminal`; `register` wires it.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import faust

from aegis_app.core.messages import LabelHop, ScoreRequest, TxHop, hop_from_wire
from aegis_app.core.timerules import DAY
from tables.features import TerminalState, assemble

if TYPE_CHECKING:
    from agents.pipeline import Pipeline

log = logging.getLogger(__name__)


def observe_terminal(
    hop: TxHop | LabelHop, state_value: Any, label_delay_days: int
) -> tuple[list, ScoreRequest | None]:
    """The terminal's new state value, and for a transaction its request to be scored."""
    state = TerminalState.from_value(state_value)
    if isinstance(hop, LabelHop):
        state.add_label(hop.transaction_id, hop.tx_ts, hop.known_at, bool(hop.label))
        return state.to_value(), None
    tx = hop.tx
    terminal_features = state.observe(tx["transaction_id"], tx["ts"], label_delay_days)
    features = assemble(tx["tx_amount"], tx["ts"], hop.card, terminal_features)
    return state.to_value(), ScoreRequest(tx=tx, features=features, ingested_ms=hop.ingested_ms)


def register(app: faust.App, pipeline: Pipeline) -> None:
    topics, counters = pipeline.topics, pipeline.counters
    counts, terminal_state = counters.counts, pipeline.terminal_state
    delay_days = pipeline.settings.label_delay_days
    source = topics.by_terminal.get_topic_name()

    @app.agent(topics.by_terminal, name="terminal_stage")
    async def terminal_stage(stream):
        manual = stream.noack()
        async for event in manual.events():
            message = event.value
            counts["terminal_stage_in"] += 1
            key = event.key.decode() if isinstance(event.key, bytes) else str(event.key)
            try:
                hop = hop_from_wire(message)
                if isinstance(hop, TxHop):
                    counters.saw_event_time(hop.source_partition, hop.tx["ts"])
                    if counters.event_time_skew_seconds() > delay_days * DAY:
                        counts["skewed_beyond_label_delay"] += 1
                state_value, request = observe_terminal(hop, terminal_state.lookup(key), delay_days)
            except Exception as exc:  # one bad message must not stop every terminal
                log.exception("terminal %s: state update failed", key)
                await pipeline.dead_letters.send(
                    json.dumps(message, default=str).encode(),
                    f"terminal state error: {exc!r}",
                    source,
                    event,
                )
                await manual.ack(event)
                continue
            await terminal_state.put(key, state_value)
            if request is None:
                await manual.ack(event)
            else:
                await pipeline.scorer.submit(manual, event, request)
