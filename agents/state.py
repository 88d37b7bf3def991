"""The Faust tables that hold feature state: one per entity the config declares, named
"<entity>_state" (the Handbook's: card_state, terminal_state). The arithmetic is in
tables/engine; a value is an entity's packed state (tables/engine/state.py), raw bytes.
Every worker also keeps a replica of each non-card entity's table (aegis_app/kafka/
state_replica.py), which the card stage reads."""

from __future__ import annotations

from collections.abc import Callable

import faust

from aegis_app.core.settings import Settings
from aegis_app.kafka.clients import KafkaConnection
from aegis_app.kafka.lean_table import LeanTable
from aegis_app.kafka.state_replica import StateReplica

# How long a replica's fetch may wait for new changelog records: its freshness is this plus
# an entity-stage batch (the goal: under a second). Longer than the stages' own wait, so the
# replicas add few fetches for the broker to answer (the embedded broker's cost per fetch
# grows with the batches a partition holds).
REPLICA_FETCH_WAIT_MS = 200


def table_name(entity: str) -> str:
    """The table of an entity's state; it also names its changelog topic
    ("<app id>-<entity>_state-changelog")."""
    return f"{entity}_state"


def _lean_table(app: faust.App, settings: Settings, name: str) -> LeanTable:
    # What app.Table(name, ...) does, with the LeanTable class (hot-path writes: put()).
    # `options` is a fresh dict per table: Faust's RocksDB store mutates the one it is given.
    table = LeanTable(
        app,
        name=name,
        key_type=str,
        value_type=bytes,  # Faust serialises bytes "raw": the packed state as it is
        beacon=app.tables.beacon,
        options=settings.rocksdb_options(),
    )
    return app.tables.add(table)


def declare_tables(
    app: faust.App, settings: Settings, entities: tuple[str, ...]
) -> dict[str, LeanTable]:
    """entity name -> its table. Keys: the entity's key text (StreamEngine.keys)."""
    return {entity: _lean_table(app, settings, table_name(entity)) for entity in entities}


def declare_replicas(
    app: faust.App, settings: Settings, tables: dict[str, LeanTable], entities: tuple[str, ...]
) -> dict[str, EntityReplica]:
    """entity -> this worker's replica of its state table (every partition), for the given
    entities (those other than the card: the card stage reads their states)."""
    replicas: dict[str, EntityReplica] = {}
    for entity in entities:
        table = tables[entity]
        replica = StateReplica(
            KafkaConnection.from_settings(settings),
            table.changelog_topic.get_topic_name(),
            settings.data_dir / "replicas" / table_name(entity),
            fetch_max_wait_ms=REPLICA_FETCH_WAIT_MS,
        )
        replicas[entity] = EntityReplica(replica, table.changelog_key)
        app.task(replica.run)
    return replicas


class EntityReplica:
    """An entity's replica, looked up by the entity's key text (StreamEngine.keys)."""

    def __init__(self, replica: StateReplica, key_bytes: Callable[[str], bytes]) -> None:
        self.replica = replica
        self._key_bytes = key_bytes

    def get(self, key: str) -> bytes | None:
        return self.replica.get(self._key_bytes(key))
