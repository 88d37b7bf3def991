"""The shard graph: parents before children, and where each shard starts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from aegis_app.ingest.shards import (
    Checkpoint,
    ShardInfo,
    ShardTracker,
    initial_checkpoints,
    start_position,
)

NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


def shard(n: int, *parents: int, closed: bool = False) -> ShardInfo:
    return ShardInfo(
        f"shardId-{n:012d}",
        tuple(f"shardId-{p:012d}" for p in parents),
        "999" if closed else None,
    )


def ids(shards) -> list[int]:
    return [int(s.shard_id.rsplit("-", 1)[1]) for s in shards]


# 0 was split into 3 and 4; 1 and 2 were merged into 5; 4 and 5 were then merged into 6.
STREAM = [
    shard(0, closed=True),
    shard(1, closed=True),
    shard(2, closed=True),
    shard(3, 0),
    shard(4, 0, closed=True),
    shard(5, 1, 2, closed=True),
    shard(6, 4, 5),
]


def test_listing_entries_give_parents_and_closed_state():
    entry = {
        "ShardId": "shardId-000000000005",
        "ParentShardId": "shardId-000000000001",
        "AdjacentParentShardId": "shardId-000000000002",
        "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": "9"},
        "SequenceNumberRange": {"StartingSequenceNumber": "1", "EndingSequenceNumber": "77"},
    }
    info = ShardInfo.from_listing(entry)
    assert info.parents == ("shardId-000000000001", "shardId-000000000002")
    assert info.closed and info.ending_sequence == "77"
    open_root = ShardInfo.from_listing({"ShardId": "s", "SequenceNumberRange": {}})
    assert open_root.parents == () and not open_root.closed


def test_children_wait_until_every_parent_is_finished():
    tracker = ShardTracker()
    tracker.update(STREAM)
    assert ids(tracker.ready()) == [0, 1, 2]
    for n in (0, 1, 2):
        tracker.start(f"shardId-{n:012d}")
    assert tracker.ready() == []
    assert ids(ShardInfo(s, (), None) for s in tracker.waiting()) == [3, 4, 5, 6]

    tracker.stop("shardId-000000000000", finished=True)
    assert ids(tracker.ready()) == [3, 4]
    tracker.stop("shardId-000000000001", finished=True)
    assert ids(tracker.ready()) == [3, 4], "a merge child needs both parents"
    tracker.stop("shardId-000000000002", finished=False)  # stopped, not finished
    assert ids(tracker.ready()) == [2, 3, 4]
    tracker.stop("shardId-000000000002", finished=True)
    assert ids(tracker.ready()) == [3, 4, 5]
    tracker.stop("shardId-000000000004", finished=True)
    assert 6 not in ids(tracker.ready())
    tracker.stop("shardId-000000000005", finished=True)
    assert ids(tracker.ready()) == [3, 6]


def test_finished_shards_from_checkpoints_are_never_read_again():
    tracker = ShardTracker(finished=["shardId-000000000000", "shardId-000000000004"])
    tracker.update(STREAM)
    assert ids(tracker.ready()) == [1, 2, 3]


def test_a_parent_gone_from_the_listing_counts_as_finished():
    # Past the stream's retention AWS no longer lists a parent; its child must not wait.
    tracker = ShardTracker()
    tracker.update([shard(3, 0), shard(5, 1, 2), shard(2, closed=True)])
    assert ids(tracker.ready()) == [2, 3]


@pytest.mark.parametrize(
    ("checkpoint", "last", "want"),
    [
        (None, None, {"ShardIteratorType": "TRIM_HORIZON"}),
        (Checkpoint(), None, {"ShardIteratorType": "TRIM_HORIZON"}),
        (
            Checkpoint(sequence_number="41"),
            None,
            {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": "41"},
        ),
        (
            Checkpoint(sequence_number="41"),
            "57",
            {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": "57"},
        ),
        (Checkpoint(started_at=NOW), None, {"ShardIteratorType": "AT_TIMESTAMP", "Timestamp": NOW}),
        (
            Checkpoint(started_at=NOW),
            "3",
            {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": "3"},
        ),
    ],
)
def test_start_position(checkpoint, last, want):
    assert start_position(checkpoint, last) == want


def test_initial_checkpoints():
    assert initial_checkpoints(STREAM, "trim_horizon", NOW) == {}
    latest = initial_checkpoints(STREAM, "latest", NOW)
    assert set(latest) == {s.shard_id for s in STREAM}
    assert all(c == Checkpoint(started_at=NOW) for c in latest.values())
    with pytest.raises(ValueError, match="start position"):
        initial_checkpoints(STREAM, "yesterday", NOW)
