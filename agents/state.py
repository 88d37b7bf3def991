"""The Faust tables that hold feature state: one per entity the config declares, named
"<entity>_state" (the Handbook's: card_state, terminal_state). The arithmetic is in
tables/engine; a value is an entity's packed state (tables/engine/state.py), raw bytes."""

from __future__ import annotations

import faust

from aegis_app.core.settings import Settings
from aegis_app.kafka.lean_table import LeanTable


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
