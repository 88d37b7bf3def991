"""The Faust tables that hold feature state; the arithmetic is in tables.features."""

from __future__ import annotations

import faust

from aegis_app.core.settings import Settings
from aegis_app.kafka.lean_table import LeanTable

# The table names, which also name their changelog topics ("<app id>-<name>-changelog").
CARD_STATE = "card_state"
TERMINAL_STATE = "terminal_state"
TABLE_NAMES = (CARD_STATE, TERMINAL_STATE)


def _lean_table(app: faust.App, settings: Settings, name: str) -> LeanTable:
    # What app.Table(name, ...) does, with the LeanTable class (hot-path writes: put()).
    # `options` is a fresh dict per table: Faust's RocksDB store mutates the one it is given.
    table = LeanTable(
        app, name=name, key_type=str, beacon=app.tables.beacon, options=settings.rocksdb_options()
    )
    return app.tables.add(table)


def declare_tables(app: faust.App, settings: Settings) -> tuple[LeanTable, LeanTable]:
    """(card_state, terminal_state). Keys: card / terminal id as a string; values (JSON, the
    app default): CardState.to_value() / TerminalState.to_value()."""
    return _lean_table(app, settings, CARD_STATE), _lean_table(app, settings, TERMINAL_STATE)
