"""A store set to write without its write-ahead log leaves the log empty."""

from __future__ import annotations

from pathlib import Path

from rocksdict import Rdict

from aegis_app.kafka.unlogged import write_without_log


def _log_bytes_after_writes(path: Path, unlogged: bool) -> int:
    db = Rdict(str(path))
    try:
        if unlogged:
            write_without_log(db)
        for i in range(500):
            db[f"key-{i}".encode()] = b"x" * 1000
        assert db[b"key-499"] == b"x" * 1000  # written all the same
        return sum(f.stat().st_size for f in path.glob("*.log"))
    finally:
        db.close()


def test_writes_skip_the_write_ahead_log(tmp_path):
    assert _log_bytes_after_writes(tmp_path / "logged", unlogged=False) > 500_000
    assert _log_bytes_after_writes(tmp_path / "unlogged", unlogged=True) < 10_000
