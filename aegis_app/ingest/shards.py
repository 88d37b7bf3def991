"""The shard graph of a Kinesis stream and where each shard is read from.

A split closes one shard and opens two children; a merge closes two and opens one. A card's
records (partition key = card) move from the parent to a child at that moment, so a child is
read only once every parent is finished: read to its end (GetRecords gave no next iterator,
AWS's end-of-shard signal) or gone from the listing (older than the stream's retention).
That keeps each card's records in order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

TRIM_HORIZON = "trim_horizon"
LATEST = "latest"
START_POSITIONS = (TRIM_HORIZON, LATEST)


@dataclass(frozen=True)
class ShardInfo:
    """One entry of ListShards."""

    shard_id: str
    parents: tuple[str, ...] = ()
    # Set once the shard is closed (split or merged); AWS writes nothing to it after that.
    ending_sequence: str | None = None

    @property
    def closed(self) -> bool:
        return self.ending_sequence is not None

    @classmethod
    def from_listing(cls, entry: dict[str, Any]) -> ShardInfo:
        parents = tuple(
            entry[name] for name in ("ParentShardId", "AdjacentParentShardId") if entry.get(name)
        )
        ending = (entry.get("SequenceNumberRange") or {}).get("EndingSequenceNumber")
        return cls(entry["ShardId"], parents, ending)


class ShardTracker:
    """Which shards may be read now: not finished, not being read, every parent finished."""

    def __init__(self, finished: Iterable[str] = ()) -> None:
        self.finished: set[str] = set(finished)
        self.reading: set[str] = set()
        self._shards: dict[str, ShardInfo] = {}

    def update(self, listing: Iterable[ShardInfo]) -> None:
        """Take a new ListShards answer (the whole stream)."""
        self._shards = {shard.shard_id: shard for shard in listing}

    def info(self, shard_id: str) -> ShardInfo | None:
        return self._shards.get(shard_id)

    def ready(self) -> list[ShardInfo]:
        """Shards to start reading, in shard-id order (parents before their children)."""
        return [
            shard
            for shard_id, shard in sorted(self._shards.items())
            if shard_id not in self.finished
            and shard_id not in self.reading
            and all(self._parent_done(parent) for parent in shard.parents)
        ]

    def _parent_done(self, parent: str) -> bool:
        return parent in self.finished or parent not in self._shards

    def start(self, shard_id: str) -> None:
        self.reading.add(shard_id)

    def stop(self, shard_id: str, finished: bool) -> None:
        self.reading.discard(shard_id)
        if finished:
            self.finished.add(shard_id)

    def waiting(self) -> list[str]:
        """Shards that wait for a parent to finish."""
        ready = {shard.shard_id for shard in self.ready()}
        return [
            shard_id
            for shard_id in sorted(self._shards)
            if shard_id not in self.finished | self.reading | ready
        ]


@dataclass(frozen=True)
class Checkpoint:
    """A shard's stored progress (aegis_app.serving.store, table kinesis_checkpoints)."""

    sequence_number: str | None = None
    started_at: datetime | None = None
    finished: bool = False


def start_position(checkpoint: Checkpoint | None, last_sequence: str | None = None) -> dict:
    """GetShardIterator arguments for a shard: after the last forwarded record if there is
    one, else from the moment reading began (`--from latest`), else its oldest record."""
    sequence = last_sequence or (checkpoint.sequence_number if checkpoint else None)
    if sequence is not None:
        return {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": sequence}
    if checkpoint is not None and checkpoint.started_at is not None:
        return {"ShardIteratorType": "AT_TIMESTAMP", "Timestamp": checkpoint.started_at}
    return {"ShardIteratorType": "TRIM_HORIZON"}


def initial_checkpoints(
    listing: Iterable[ShardInfo], start_from: str, now: datetime
) -> dict[str, Checkpoint]:
    """Checkpoints to store before the first read of a stream that has none.

    From the oldest records nothing needs storing (no checkpoint means TRIM_HORIZON). From
    the latest, every listed shard starts now, recorded so that a restart before a shard's
    first record neither skips nor re-reads anything; a closed shard then ends at its first
    read, and shards created later start at their oldest record.
    """
    if start_from not in START_POSITIONS:
        raise ValueError(f"start position: expected one of {START_POSITIONS}, got {start_from!r}")
    if start_from == TRIM_HORIZON:
        return {}
    return {shard.shard_id: Checkpoint(started_at=now) for shard in listing}
