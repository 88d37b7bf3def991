"""RocksDB stores that write without their write-ahead log, because a Kafka changelog is
their log: a worker that dies loses what was only in memory and replays the changelog
(OPERATIONS "Replicas"). Skipping the log is about a third of each write's cost."""

from __future__ import annotations

from typing import Any

from rocksdict import WriteOptions


def write_without_log(db: Any) -> None:
    """Set `db` (a rocksdict Rdict) to write without RocksDB's write-ahead log."""
    options = WriteOptions()
    options.disable_wal = True
    db.set_write_options(options)
