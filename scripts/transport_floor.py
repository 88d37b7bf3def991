"""The transport's latency floor on the embedded broker, for `aegis bench --rate R` to be
read against: what a bare consume -> produce passthrough takes, with no Aegis code.

    .venv/bin/python scripts/transport_floor.py --rate 200 --transactions 20000 --fetch-wait 20

A fresh embedded broker, 4-partition topics `in` and `out`; a producer sends
--transactions records of 300 bytes at --rate a second (keys spread over 5,000 cards,
linger 5 ms, as the bench's load generator); a group consumer with --fetch-wait ms of fetch
wait sends each record on to `out` as soon as it has it; a reader takes `out`. Latency is
what `aegis bench` measures: the output record's timestamp minus the input record's. Prints
JSON: the percentiles, and the p99 of each 10 s of input (the broker slows as it fills).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aegis_app.core.pacing import Pacer
from aegis_app.harness.embedded_broker import EmbeddedBroker, free_port  # noqa: E402
from aegis_app.kafka.admin import ensure_topics  # noqa: E402

VALUE = b"x" * 300
CARDS = 5_000


async def produce(bootstrap: str, rate: float, count: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        pacer = Pacer(rate)
        for i in range(count):
            await producer.send("in", key=str(random.randrange(CARDS)).encode(), value=VALUE)
            await pacer.wait(i + 1)
        await producer.flush()
    finally:
        await producer.stop()


async def forward(bootstrap: str, fetch_wait_ms: int) -> None:
    """Each input record on to `out`, carrying the input's timestamp as its value."""
    consumer = AIOKafkaConsumer(
        "in",
        bootstrap_servers=bootstrap,
        group_id="floor",
        fetch_max_wait_ms=fetch_wait_ms,
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await consumer.start()
    await producer.start()
    try:
        while True:
            fetched = await consumer.getmany(timeout_ms=1000)
            for records in fetched.values():
                for record in records:
                    value = str(record.timestamp).encode()
                    await producer.send("out", key=record.key, value=value)
    finally:
        await consumer.stop()
        await producer.stop()


async def read(bootstrap: str, count: int) -> list[tuple[int, int]]:
    """(input time, latency) in ms of `count` output records."""
    consumer = AIOKafkaConsumer(
        "out", bootstrap_servers=bootstrap, auto_offset_reset="earliest", fetch_max_wait_ms=100
    )
    await consumer.start()
    seen: list[tuple[int, int]] = []
    try:
        while len(seen) < count:
            fetched = await consumer.getmany(timeout_ms=1000)
            for records in fetched.values():
                seen += [(int(r.value), r.timestamp - int(r.value)) for r in records]
    finally:
        await consumer.stop()
    return seen


async def measure(bootstrap: str, rate: float, count: int, fetch_wait_ms: int) -> dict:
    forwarding = asyncio.create_task(forward(bootstrap, fetch_wait_ms))
    reading = asyncio.create_task(read(bootstrap, count))
    try:
        await asyncio.sleep(3)  # the consumer group forms
        await produce(bootstrap, rate, count)
        seen = await asyncio.wait_for(reading, 120)
    finally:
        forwarding.cancel()
        await asyncio.gather(forwarding, return_exceptions=True)
    latencies = sorted(latency for _, latency in seen)
    first = min(at for at, _ in seen)
    per_10s: dict[int, list[int]] = {}
    for at, latency in seen:
        per_10s.setdefault((at - first) // 10_000, []).append(latency)
    return {
        "rate": rate,
        "transactions": count,
        "fetch_wait_ms": fetch_wait_ms,
        "latency_ms": {
            name: latencies[min(len(latencies) - 1, int(len(latencies) * q))]
            for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("max", 1.0))
        },
        "p99_ms_per_10s": [
            sorted(values)[int(len(values) * 0.99)] for _, values in sorted(per_10s.items())
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--transactions", type=int, default=20_000)
    parser.add_argument("--fetch-wait", type=int, default=20, help="ms (AEGIS_FETCH_MAX_WAIT_MS)")
    args = parser.parse_args()
    with EmbeddedBroker(port=free_port()) as broker:
        ensure_topics(broker.bootstrap, ["in", "out"], partitions=4)
        result = asyncio.run(
            measure(broker.bootstrap, args.rate, args.transactions, args.fetch_wait)
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
