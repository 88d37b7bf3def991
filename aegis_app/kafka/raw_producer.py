"""Send already-serialized records on the worker's own producer, past Faust's per-record layers.

Why: on this project's machine Faust's ``Topic.send`` costs ~150 µs per record (a
FutureMessage, a PendingMessage, channel and sensor bookkeeping), the aiokafka producer
under it ~40 µs (``scripts/faust_floor.py``, BENCHMARKS.md). The hot path writes four
records per transaction (a by-entity hop, two changelog rows, the decision), so those
layers were the largest share of a worker's time. The stages send a whole batch's records
at once (:func:`send_many`: one record batch per partition).

Nothing about delivery changes: this is the same aiokafka producer Faust uses, with the
same accumulator, so the producer flush Faust runs before every offset commit
(``Consumer._commit_offsets``) covers these records exactly as it covers Faust's own.
Partitioning is the producer's own partitioner on the key bytes (aiokafka's default),
which is what Faust's ``Topic.send`` uses when no partition is given; aiokafka's default
one is computed for the whole batch at once (aegis_app/kafka/partitioning.py).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence

import orjson
from aiokafka.partitioner import DefaultPartitioner

from aegis_app.kafka.partitioning import partitions_of


def _kafka_producer(app):
    # Faust keeps its aiokafka producer private; the accessor raises NotReady before start.
    return app.producer._ensure_producer()


async def send_many(
    app, topic: str, records: Sequence[tuple[bytes, bytes]], partition: int | None = None
) -> list[tuple[int, int, asyncio.Future]]:
    """Queue keyed records, partitioned as a keyed ``Topic.send`` would, as one record batch
    per partition (aiokafka's ``create_batch``/``send_batch``): no per-record future or
    accumulator step. Awaiting waits for room in the producer's queue, not for the broker;
    Faust's flush before each offset commit covers these batches too.

    `partition`: all records go there (a table's changelog) instead. Returns, per batch
    sent, its partition, its number of records and the future of its broker
    acknowledgement (RecordMetadata of the batch's first record)."""
    if not records:
        return []
    producer = _kafka_producer(app)
    by_partition: dict[int, list[tuple[bytes, bytes]]] = defaultdict(list)
    if partition is not None:
        by_partition[partition] = list(records)
    else:
        partitioner = app.producer.partitioner  # the one Faust gave its aiokafka producer
        partitions = sorted(await producer.partitions_for(topic))
        if type(partitioner) is DefaultPartitioner:  # the same partitions, all in one call
            numbers = partitions_of([key for key, _ in records], len(partitions))
            for index, record in zip(numbers, records):
                by_partition[partitions[index]].append(record)
        else:
            for key, value in records:
                by_partition[partitioner(key, partitions, partitions)].append((key, value))
    sent: list[tuple[int, int, asyncio.Future]] = []
    for number, items in by_partition.items():
        batch, count = producer.create_batch(), 0
        for key, value in items:
            if batch.append(timestamp=None, key=key, value=value) is None:  # full
                sent.append((number, count, await _send_closed(producer, batch, topic, number)))
                batch, count = producer.create_batch(), 0
                if batch.append(timestamp=None, key=key, value=value) is None:
                    raise ValueError(f"a record of {len(value)} bytes does not fit a batch")
            count += 1
        sent.append((number, count, await _send_closed(producer, batch, topic, number)))
    return sent


async def _send_closed(producer, batch, topic: str, partition: int) -> asyncio.Future:
    # Closed: the records are already gathered, so the batch goes with the sender's next
    # request instead of lingering (an open one waits producer_linger_ms, and the next
    # batch for its partition waits for it: +110 ms per transaction at 200 tx/s).
    batch.close()
    return await producer.send_batch(batch, topic, partition=partition)


def dumps(value) -> bytes:
    """JSON bytes for a record value, readable by Faust's "json" serializer and any consumer."""
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)
