"""raw_producer.send_many against the embedded broker: every record arrives once, on the
partition a keyed send would have chosen, also when a partition's records fill several
record batches."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from aegis_app.kafka import raw_producer
from aegis_app.kafka.admin import ensure_topics


def test_send_many_partitions_as_a_keyed_send_and_loses_nothing(broker):
    topic = "raw-producer-send-many"
    ensure_topics(broker.bootstrap, [topic], partitions=4)
    # ~200 bytes a record, 3,000 records: each partition's share fills several 16 KB batches.
    records = [(f"key-{i % 700}".encode(), f"{i:06d}".encode() * 33) for i in range(3000)]

    async def scenario() -> list[tuple[int, bytes, bytes]]:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5)
        await producer.start()
        app = SimpleNamespace(
            producer=SimpleNamespace(
                partitioner=DefaultPartitioner(), _ensure_producer=lambda: producer
            )
        )
        try:
            await raw_producer.send_many(app, topic, records)
            await producer.flush()
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest"
        )
        await consumer.start()
        got: list[tuple[int, bytes, bytes]] = []
        try:
            while len(got) < len(records):
                batches = await asyncio.wait_for(consumer.getmany(timeout_ms=500), 30)
                for messages in batches.values():
                    got += [(m.partition, m.key, m.value) for m in messages]
        finally:
            await consumer.stop()
        return got

    got = asyncio.run(scenario())
    assert sorted((key, value) for _, key, value in got) == sorted(records)
    partitioner = DefaultPartitioner()
    assert all(
        partition == partitioner(key, [0, 1, 2, 3], [0, 1, 2, 3]) for partition, key, _ in got
    )
    # In each partition, the records keep the order they were given in.
    for partition in range(4):
        sent = [value for key, value in records if partitioner(key, [0, 1, 2, 3], []) == partition]
        assert [value for p, _, value in got if p == partition] == sent
