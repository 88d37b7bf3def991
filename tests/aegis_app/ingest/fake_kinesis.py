"""Test doubles: a Kinesis client with AWS's resharding semantics, and Kafka producers.

moto (the real local endpoint these tests also use) cannot show a parent-to-child hand-off:
after a split or merge it writes new records to the closed parents and never ends a closed
shard's reads. This in-memory client does what AWS documents instead: a split or merge
closes its parents (no more writes; a read past a closed shard's last record returns no next
iterator) and new records go to the open children.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from aiokafka.errors import KafkaTimeoutError
from botocore.exceptions import ClientError

HASH_SPACE = 2**128


@dataclass
class FakeShard:
    shard_id: str
    start: int
    end: int  # inclusive, as AWS's EndingHashKey
    parents: tuple[str, ...] = ()
    records: list[dict[str, Any]] = field(default_factory=list)
    closed: bool = False


class FakeKinesis:
    """The boto3 Kinesis client calls the bridge makes, for one stream, in memory."""

    def __init__(self, stream_name: str, shard_count: int, page_size: int = 2) -> None:
        self.stream_name = stream_name
        self.meta = SimpleNamespace(region_name="fake-region", endpoint_url="memory://kinesis")
        self.page_size = page_size  # ListShards pages, small so paging is exercised
        # AWS error codes the next calls of an action raise, in order (e.g. throttling).
        self.failures: dict[str, list[str]] = {}
        self.shards: dict[str, FakeShard] = {}
        self._sequence = 49_000_000_000
        step = HASH_SPACE // shard_count
        for i in range(shard_count):
            end = HASH_SPACE - 1 if i == shard_count - 1 else (i + 1) * step - 1
            self._add(i * step, end)

    # ----------------------------------------------------------- stream changes (tests)

    def _add(self, start: int, end: int, parents: tuple[str, ...] = ()) -> FakeShard:
        shard = FakeShard(f"shardId-{len(self.shards):012d}", start, end, parents)
        self.shards[shard.shard_id] = shard
        return shard

    def put(self, partition_key: str, data: bytes) -> tuple[str, str]:
        """PutRecord: (shard id, sequence number)."""
        key = int(hashlib.md5(partition_key.encode()).hexdigest(), 16)
        shard = next(s for s in self.shards.values() if not s.closed and s.start <= key <= s.end)
        self._sequence += 1
        sequence = str(self._sequence)
        shard.records.append(
            {
                "SequenceNumber": sequence,
                "Data": data,
                "PartitionKey": partition_key,
                "ApproximateArrivalTimestamp": datetime.now(UTC),
            }
        )
        return shard.shard_id, sequence

    def split(self, shard_id: str) -> tuple[str, str]:
        parent = self.shards[shard_id]
        assert not parent.closed
        middle = (parent.start + parent.end) // 2
        parent.closed = True
        low = self._add(parent.start, middle, (shard_id,))
        high = self._add(middle + 1, parent.end, (shard_id,))
        return low.shard_id, high.shard_id

    def merge(self, shard_id: str, adjacent_id: str) -> str:
        first, second = self.shards[shard_id], self.shards[adjacent_id]
        assert first.end + 1 == second.start and not first.closed and not second.closed
        first.closed = second.closed = True
        return self._add(first.start, second.end, (shard_id, adjacent_id)).shard_id

    # ----------------------------------------------------------- the client's API

    def _maybe_fail(self, action: str) -> None:
        codes = self.failures.get(action)
        if codes:
            code = codes.pop(0)
            raise ClientError({"Error": {"Code": code, "Message": f"{code} (test)"}}, action)

    def list_shards(self, StreamName=None, NextToken=None, MaxResults=None) -> dict:
        self._maybe_fail("ListShards")
        assert (StreamName is None) != (NextToken is None), "AWS: StreamName xor NextToken"
        start = int(NextToken or 0)
        ids = sorted(self.shards)[start : start + self.page_size]
        answer: dict[str, Any] = {"Shards": [self._describe(self.shards[i]) for i in ids]}
        if start + self.page_size < len(self.shards):
            answer["NextToken"] = str(start + self.page_size)
        return answer

    def _describe(self, shard: FakeShard) -> dict:
        entry: dict[str, Any] = {
            "ShardId": shard.shard_id,
            "HashKeyRange": {"StartingHashKey": str(shard.start), "EndingHashKey": str(shard.end)},
            "SequenceNumberRange": {"StartingSequenceNumber": "0"},
        }
        if shard.parents:
            entry["ParentShardId"] = shard.parents[0]
        if len(shard.parents) > 1:
            entry["AdjacentParentShardId"] = shard.parents[1]
        if shard.closed:
            entry["SequenceNumberRange"]["EndingSequenceNumber"] = str(self._sequence + 10**6)
        return entry

    def get_shard_iterator(
        self,
        StreamName,
        ShardId,
        ShardIteratorType,
        StartingSequenceNumber=None,
        Timestamp=None,
    ) -> dict:
        self._maybe_fail("GetShardIterator")
        shard = self.shards[ShardId]
        numbers = [int(r["SequenceNumber"]) for r in shard.records]
        if ShardIteratorType == "TRIM_HORIZON":
            index = 0
        elif ShardIteratorType == "LATEST":
            index = len(numbers)
        elif ShardIteratorType == "AFTER_SEQUENCE_NUMBER":
            index = sum(1 for n in numbers if n <= int(StartingSequenceNumber))
        elif ShardIteratorType == "AT_TIMESTAMP":
            index = sum(1 for r in shard.records if r["ApproximateArrivalTimestamp"] < Timestamp)
        else:
            raise AssertionError(ShardIteratorType)
        return {"ShardIterator": f"{ShardId}|{index}"}

    def get_records(self, ShardIterator, Limit) -> dict:
        self._maybe_fail("GetRecords")
        shard_id, index = ShardIterator.split("|")
        shard = self.shards[shard_id]
        start = int(index)
        batch = shard.records[start : start + Limit]
        end = start + len(batch)
        answer: dict[str, Any] = {"Records": batch, "MillisBehindLatest": 0}
        if not (shard.closed and end >= len(shard.records)):
            answer["NextShardIterator"] = f"{shard_id}|{end}"
        return answer


class RecordingProducer:
    """An AIOKafkaProducer stand-in: keeps what was sent; acknowledges at once, or only when
    `acknowledge()` is called (hold=True), or refuses everything (refuse=True)."""

    def __init__(self, hold: bool = False, refuse: bool = False) -> None:
        self.hold = hold
        self.refuse = refuse
        self.sent: list[tuple[str, bytes | None, bytes]] = []
        self._held: list[asyncio.Future] = []

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        if self.refuse:
            future.set_exception(KafkaTimeoutError("refused by the test"))
            return future
        self.sent.append((topic, key, value))
        if self.hold:
            self._held.append(future)
        else:
            future.set_result(None)
        return future

    def acknowledge(self) -> int:
        held, self._held = self._held, []
        for future in held:
            future.set_result(None)
        return len(held)

    def on(self, topic: str) -> list[tuple[bytes | None, bytes]]:
        return [(key, value) for t, key, value in self.sent if t == topic]
