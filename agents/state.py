"""The Faust tables that hold feature state; the arithmetic is in tables.features."""

from __future__ import annotations

from aegis_app.kafka.lean_table import LeanTable
from aegis_app.worker.app import app, settings


def _lean_table(name: str) -> LeanTable:
    # What app.Table(name, ...) does, with the LeanTable class (hot-path writes: put()).
    # `options` is a fresh dict per table: Faust's RocksDB store mutates the one it is given.
    table = LeanTable(
        app, name=name, key_type=str, beacon=app.tables.beacon, options=settings.rocksdb_options()
    )
    return app.tables.add(table)


# Key: card id as a string. Value (JSON, the app default): CardState.to_value().
card_state = _lean_table("card_state")
# Key: terminal id as a string. Value (JSON): TerminalState.to_value().
terminal_state = _lean_table("terminal_state")
