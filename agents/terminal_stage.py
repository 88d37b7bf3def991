"""Terminal stage: terminal state and delayed fraud labels; hands each transaction,
with its full feature vector, to the micro-batch scorer.

Acks are manual here: an event is acknowledged only after its decision is published,
so a crash between the two re-delivers it (and the state update is idempotent).
"""

from __future__ import annotations

import json
import logging

from aegis_app.worker.app import app, settings
from agents import topics
from agents.counters import counts, event_time_skew_seconds, source_watermarks
from agents.deadletter import dead_letter
from agents.scoring import scorer
from agents.state import terminal_state
from tables.features import DAY, TerminalState, assemble

log = logging.getLogger(__name__)


@app.agent(topics.by_terminal)
async def terminal_stage(stream):
    manual = stream.noack()
    async for event in manual.events():
        message = event.value
        counts["terminal_stage_in"] += 1
        key = event.key.decode() if isinstance(event.key, bytes) else str(event.key)
        try:
            state = TerminalState.from_value(terminal_state.lookup(key))
            if message.get("kind") == "label":
                label = message["label"]
                state.add_label(
                    label["transaction_id"],
                    label["tx_ts"],
                    label["known_at"],
                    bool(label["label"]),
                )
            else:
                tx = message["tx"]
                source = message.get("source_partition")
                if source is not None and tx["ts"] > source_watermarks.get(source, 0):
                    source_watermarks[source] = tx["ts"]
                if event_time_skew_seconds() > settings.label_delay_days * DAY:
                    counts["skewed_beyond_label_delay"] += 1
                terminal_features = state.observe(
                    tx["transaction_id"], tx["ts"], settings.label_delay_days
                )
                features = assemble(tx["tx_amount"], tx["ts"], message["card"], terminal_features)
        except Exception as exc:  # one bad message must not stop every terminal
            log.exception("terminal %s: state update failed", key)
            await dead_letter(
                json.dumps(message, default=str).encode(),
                f"terminal state error: {exc!r}",
                topics.by_terminal.get_topic_name(),
                event,
            )
            await manual.ack(event)
            continue
        await terminal_state.put(key, state.to_value())
        if message.get("kind") == "label":
            await manual.ack(event)
        else:
            await scorer.submit(manual, event, tx, features, message.get("ingested_ms"))
