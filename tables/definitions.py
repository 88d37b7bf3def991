"""The Faust tables that hold feature state; the arithmetic is in tables.features."""

from __future__ import annotations

from aegis_app.app import app, settings

# Key: card id as a string. Value (JSON, the app default): CardState.to_value().
# `options` is a fresh dict per table: Faust's RocksDB store mutates the one it is given.
card_state = app.Table("card_state", key_type=str, options=settings.rocksdb_options())
# Key: terminal id as a string. Value (JSON): TerminalState.to_value().
terminal_state = app.Table("terminal_state", key_type=str, options=settings.rocksdb_options())
