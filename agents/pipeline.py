"""The worker's stream pipeline, registered on a Faust app by the app factory.

    aegis.transactions -> card stage -> scorer -> aegis.decisions, aegis.alerts
                              ^    |
          replicas of the other    |  (off the decision path: one hop per further entity
          entities' states         v   of the config, the merchant, e.g. a category)
                              ^  aegis.by-entity <- label router <- aegis.labels
                              |    |
          <entity>_state changelogs <- entity stage

Each stage's module has its per-event logic as plain functions and a `register(app,
pipeline)` that attaches its agent; nothing attaches itself at import.
"""

from __future__ import annotations

from dataclasses import dataclass

import faust

from aegis_app.core.codec import RecordCodec
from aegis_app.core.config import Config, ConfigError
from aegis_app.core.settings import Settings
from aegis_app.kafka import partitioning
from aegis_app.kafka.lean_table import LeanTable
from agents import card_stage, entity_stage, labels, scoring, views
from agents.counters import WorkerCounters
from agents.deadletter import DeadLetters
from agents.deferred_sends import DeferredSends
from agents.scoring import MicroBatchScorer
from agents.state import EntityReplica, declare_replicas, declare_tables
from agents.topics import Topics, declare_topics
from tables.engine import StreamEngine


@dataclass
class Pipeline:
    """Everything the stages share in one worker."""

    settings: Settings
    config: Config
    engine: StreamEngine
    codec: RecordCodec
    topics: Topics
    card_entity: str
    states: dict[str, LeanTable]  # entity name -> its state table
    replicas: dict[str, EntityReplica]  # every entity but the card -> this worker's replica
    counters: WorkerCounters
    dead_letters: DeadLetters
    scorer: MicroBatchScorer
    hop_sends: DeferredSends | None = None  # set by the card stage
    changelog_sends: DeferredSends | None = None  # likewise


def card_entity_of(engine: StreamEngine) -> str:
    """The entity kept per card: the card stage's, whose input is keyed by card. Its
    state cannot take labels (they travel by the other entities' keys)."""
    card = engine.entity_of_column("card")
    if card is None:  # the config's checks require it; kept for a clear message
        raise ConfigError('entities: state must be kept for the card (e.g. card = "card")')
    if card in engine.label_entities:
        raise ConfigError(
            f"features: label-based features (fraud_share) on the card entity {card!r} are "
            "not supported by the stream; declare them on the merchant or another entity"
        )
    return card


def register(app: faust.App, settings: Settings) -> Pipeline:
    """Declare the topics and tables on `app` and attach every agent, task and web page."""
    config = settings.load_config()
    engine = StreamEngine(config)  # compiles its code now, not at the first transaction
    partitioning.warm_up()  # likewise
    card = card_entity_of(engine)
    topics = declare_topics(app)
    counters = WorkerCounters()
    states = declare_tables(app, settings, engine.entities)
    others = tuple(e for e in engine.entities if e != card)
    pipeline = Pipeline(
        settings=settings,
        config=config,
        engine=engine,
        codec=RecordCodec(config),
        topics=topics,
        card_entity=card,
        states=states,
        replicas=declare_replicas(app, settings, states, others),
        counters=counters,
        dead_letters=DeadLetters(topics.deadletter, counters),
        scorer=scoring.register(app, settings, counters, engine),
    )
    for stage in (card_stage, labels, entity_stage, views):
        stage.register(app, pipeline)
    return pipeline
