"""The worker's stream pipeline, registered on a Faust app by the app factory.

    aegis.transactions -> card stage -> aegis.by-terminal <- label router <- aegis.labels
                                              |
                                     terminal stage -> scorer -> aegis.decisions, aegis.alerts

Each stage's module has its per-event logic as plain functions and a `register(app,
pipeline)` that attaches its agent; nothing attaches itself at import.
"""

from __future__ import annotations

from dataclasses import dataclass

import faust

from aegis_app.core.settings import Settings
from aegis_app.kafka.lean_table import LeanTable
from agents import card_stage, labels, scoring, terminal_stage, views
from agents.counters import WorkerCounters
from agents.deadletter import DeadLetters
from agents.scoring import MicroBatchScorer
from agents.state import declare_tables
from agents.topics import Topics, declare_topics


@dataclass
class Pipeline:
    """Everything the stages share in one worker."""

    settings: Settings
    topics: Topics
    card_state: LeanTable
    terminal_state: LeanTable
    counters: WorkerCounters
    dead_letters: DeadLetters
    scorer: MicroBatchScorer


def register(app: faust.App, settings: Settings) -> Pipeline:
    """Declare the topics and tables on `app` and attach every agent, task and web page."""
    topics = declare_topics(app)
    card_table, terminal_table = declare_tables(app, settings)
    counters = WorkerCounters()
    pipeline = Pipeline(
        settings=settings,
        topics=topics,
        card_state=card_table,
        terminal_state=terminal_table,
        counters=counters,
        dead_letters=DeadLetters(topics.deadletter, counters),
        scorer=scoring.register(app, settings, counters),
    )
    for stage in (card_stage, labels, terminal_stage, views):
        stage.register(app, pipeline)
    return pipeline
