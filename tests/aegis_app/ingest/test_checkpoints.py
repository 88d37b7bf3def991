"""Shard checkpoints in the result store (SQLite and PostgreSQL): migration, values kept
when not given, finished for good, one stream's rows apart from another's."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy import inspect

from aegis_app.ingest.checkpoints import CheckpointBook
from aegis_app.ingest.shards import Checkpoint
from aegis_app.serving.store import Store, upgrade

AT = datetime(2026, 12, 4, 9, 30, tzinfo=UTC)
BIG = "4959033827149025660855969253836157109592157598913658889" + "8" * 70  # 125 digits


def test_migration_creates_the_checkpoint_table(any_store: Store):
    inspector = inspect(any_store.engine)
    assert "kinesis_checkpoints" in inspector.get_table_names()
    columns = {c["name"] for c in inspector.get_columns("kinesis_checkpoints")}
    assert columns == {
        "stream_name",
        "shard_id",
        "sequence_number",
        "started_at",
        "finished",
        "updated_at",
    }
    upgrade(any_store.engine)  # a second run is a no-op
    assert any_store.kinesis_checkpoints("s") == {}


def test_checkpoints_advance_keep_what_is_not_given_and_stay_finished(any_store: Store):
    store = any_store
    store.save_kinesis_checkpoint("s", "shardId-1", started_at=AT)
    assert store.kinesis_checkpoints("s") == {
        "shardId-1": {"sequence_number": None, "started_at": AT, "finished": False}
    }
    store.save_kinesis_checkpoint("s", "shardId-1", sequence_number="41")
    store.save_kinesis_checkpoint("s", "shardId-1", sequence_number=BIG)
    store.save_kinesis_checkpoint("s", "shardId-1", finished=True)
    store.save_kinesis_checkpoint("s", "shardId-1")  # nothing given: nothing changes
    assert store.kinesis_checkpoints("s")["shardId-1"] == {
        "sequence_number": BIG,
        "started_at": AT,
        "finished": True,
    }
    store.save_kinesis_checkpoint("s", "shardId-1", sequence_number="42", finished=False)
    assert store.kinesis_checkpoints("s")["shardId-1"]["finished"] is True


def test_streams_are_apart(any_store: Store):
    any_store.save_kinesis_checkpoint("a", "shardId-1", sequence_number="1")
    any_store.save_kinesis_checkpoint("b", "shardId-1", sequence_number="2")
    any_store.save_kinesis_checkpoint("b", "shardId-2", finished=True)
    assert {k: v["sequence_number"] for k, v in any_store.kinesis_checkpoints("a").items()} == {
        "shardId-1": "1"
    }
    assert set(any_store.kinesis_checkpoints("b")) == {"shardId-1", "shardId-2"}


def test_checkpoint_book_round_trip(sqlite_store: Store):
    book = CheckpointBook(sqlite_store, "payments")

    async def scenario() -> dict[str, Checkpoint]:
        await book.store_initial(
            {"shardId-0": Checkpoint(started_at=AT), "shardId-1": Checkpoint(finished=True)}
        )
        await book.advance("shardId-0", "10")
        await book.advance("shardId-2", "7")
        await book.finish("shardId-2", "9")
        await book.finish("shardId-3")
        return await book.load()

    assert asyncio.run(scenario()) == {
        "shardId-0": Checkpoint(sequence_number="10", started_at=AT),
        "shardId-1": Checkpoint(finished=True),
        "shardId-2": Checkpoint(sequence_number="9", finished=True),
        "shardId-3": Checkpoint(finished=True),
    }
