"""Shard checkpoints of one stream in the result store, for async code.

The store's methods are synchronous and each opens its own short transaction; they run in a
thread here so a slow database never stalls the other shards' reads and sends.
"""

from __future__ import annotations

import asyncio

from aegis_app.ingest.shards import Checkpoint
from aegis_app.serving.store import Store


class CheckpointBook:
    """Load and advance the checkpoints of `stream_name`."""

    def __init__(self, store: Store, stream_name: str) -> None:
        self.store = store
        self.stream_name = stream_name

    async def load(self) -> dict[str, Checkpoint]:
        rows = await asyncio.to_thread(self.store.kinesis_checkpoints, self.stream_name)
        return {shard_id: Checkpoint(**row) for shard_id, row in rows.items()}

    async def advance(self, shard_id: str, sequence_number: str) -> None:
        """Every record of the shard up to `sequence_number` is acknowledged by the broker."""
        await self._save(shard_id, sequence_number=sequence_number)

    async def finish(self, shard_id: str, sequence_number: str | None = None) -> None:
        """The closed shard was read to its end: never read again, its children may start."""
        await self._save(shard_id, sequence_number=sequence_number, finished=True)

    async def store_initial(self, checkpoints: dict[str, Checkpoint]) -> None:
        for shard_id, checkpoint in checkpoints.items():
            await self._save(
                shard_id,
                sequence_number=checkpoint.sequence_number,
                started_at=checkpoint.started_at,
                finished=checkpoint.finished,
            )

    async def _save(self, shard_id: str, **values: object) -> None:
        await asyncio.to_thread(
            self.store.save_kinesis_checkpoint, self.stream_name, shard_id, **values
        )
