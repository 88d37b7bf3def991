"""Filling Kinesis streams in tests: generated transactions, poison records, PutRecords."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aegis_app.core import files
from aegis_app.core.codec import RecordCodec
from aegis_app.harness import simulator
from aegis_app.ingest.conversion import kinesis_data

# The bridge's codec in these tests: the default preset's (the simulator's schema).
CODEC = RecordCodec(files.simulator_config())

# (data, a word of the dead letter's reason): records the bridge must refuse.
POISON = [
    (b"", "empty"),
    (b"not json at all", "not JSON"),
    (b"[1, 2, 3]", "JSON object"),
    (b'{"TRANSACTION_ID": 1}', "CUSTOMER_ID: missing"),
    (
        b'{"TRANSACTION_ID": 5, "TX_DATETIME": "2018-04-01 00:00:01", "CUSTOMER_ID": 1, '
        b'"TERMINAL_ID": 2, "TX_AMOUNT": -3.5}',
        "TX_AMOUNT: -3.5 is not in",
    ),
    (
        b'{"TRANSACTION_ID": 6, "TX_DATETIME": "tomorrow", "CUSTOMER_ID": 1, '
        b'"TERMINAL_ID": 2, "TX_AMOUNT": 3.5}',
        "TX_DATETIME: 'tomorrow' does not match",
    ),
]


@dataclass(frozen=True)
class Generated:
    """A transaction as a producer puts it on the stream (`raw`, the user's schema) and as
    the bridge reads it (`record`, normalised)."""

    raw: dict[str, Any]
    record: dict[str, Any]

    @property
    def transaction_id(self) -> str:
        return self.record["transaction_id"]

    @property
    def card(self) -> str:
        return self.record["card"]


def generated(count: int, seed: int, first_id: int = 0) -> list[Generated]:
    """The first `count` simulator transactions of a dozen cards (several each), ids
    renumbered from `first_id` so that batches do not collide."""
    frame = simulator.generate(customers=12, terminals=120, days=30, seed=seed).head(count)
    assert len(frame) == count, f"seed {seed} gives only {len(frame)} transactions"
    frame["TRANSACTION_ID"] = frame["TRANSACTION_ID"] + first_id
    return [Generated(raw, record) for record, raw in files.good_rows(files.iter_frame(frame))]


def as_records(txs: list[Generated]) -> list[tuple[str, bytes]]:
    """(partition key, data) of each transaction: keyed by card, as producers should."""
    return [(tx.card, kinesis_data(tx.raw)) for tx in txs]


def sent_id(value: bytes) -> str:
    """The transaction id of a message on aegis.transactions."""
    return CODEC.decode(value)["transaction_id"]


def put_all(client: Any, stream_name: str, records: list[tuple[str, bytes]]) -> list[tuple]:
    """PutRecords in order, 500 at a time; the (shard id, sequence number) of each record."""
    where: list[tuple[str, str]] = []
    for start in range(0, len(records), 500):
        chunk = records[start : start + 500]
        answer = client.put_records(
            StreamName=stream_name,
            Records=[{"PartitionKey": key, "Data": data} for key, data in chunk],
        )
        assert answer.get("FailedRecordCount", 0) == 0, answer
        where.extend((r["ShardId"], r["SequenceNumber"]) for r in answer["Records"])
    return where


def put_one(client: Any, stream_name: str, key: str, data: bytes) -> tuple[str, str]:
    answer = client.put_record(StreamName=stream_name, PartitionKey=key, Data=data)
    return answer["ShardId"], answer["SequenceNumber"]


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:g}s")
        time.sleep(0.1)


async def async_wait_until(
    condition: Callable[[], bool], timeout: float, what: str, task: asyncio.Task | None = None
) -> None:
    """Wait for `condition`; fail at once with the task's error if `task` ended."""
    deadline = time.monotonic() + timeout
    while not condition():
        if task is not None and task.done():
            task.result()
            raise AssertionError(f"{what}: the bridge stopped first")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:g}s")
        await asyncio.sleep(0.05)
