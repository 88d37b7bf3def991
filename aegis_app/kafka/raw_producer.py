"""Send already-serialized records on the worker's own producer, past Faust's per-record layers.

Why: on this project's machine Faust's ``Topic.send`` costs ~150 µs per record (a
FutureMessage, a PendingMessage, channel and sensor bookkeeping), the aiokafka producer
under it ~40 µs (``scripts/faust_floor.py``, BENCHMARKS.md). The hot path writes four
records per transaction (a by-entity hop, two changelog rows, the decision), so those
layers were the largest share of a worker's time.

Nothing about delivery changes: this is the same aiokafka producer Faust uses, with the
same accumulator, so the producer flush Faust runs before every offset commit
(``Consumer._commit_offsets``) covers these records exactly as it covers Faust's own.
Partitioning is aiokafka's default partitioner on the key bytes, which is what Faust's
``Topic.send`` uses when no partition is given.
"""

from __future__ import annotations

import asyncio

import orjson


def _kafka_producer(app):
    # Faust keeps its aiokafka producer private; the accessor raises NotReady before start.
    return app.producer._ensure_producer()


async def send(
    app, topic: str, key: bytes | None, value: bytes, partition: int | None = None
) -> asyncio.Future:
    """Queue one record; returns the broker acknowledgement's future (RecordMetadata).

    Awaiting this only waits for room in the producer's buffer (back-pressure), not for
    the broker.
    """
    return await _kafka_producer(app).send(topic, value, key=key, partition=partition)


def dumps(value) -> bytes:
    """JSON bytes for a record value, readable by Faust's "json" serializer and any consumer."""
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)
