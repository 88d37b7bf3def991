"""The broker's own produce-ack latency, seen by a producer that shares nothing else.

    .venv/bin/python scripts/broker_probe.py --bootstrap 127.0.0.1:9092 --seconds 28

Sends one 200-byte record every ``--interval-ms`` to its own one-partition topic
(``aegis.probe``, created if missing) and waits for each ack, then prints one JSON line of
ack latencies. Run beside a load (``PROBE=1 scripts/api_bench.sh``) it separates what the
broker takes from what a client's own queueing adds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

TOPIC = "aegis.probe"


def percentile(values: list[float], q: float) -> float:
    return round(values[min(len(values) - 1, int(len(values) * q))], 1)


async def probe(bootstrap: str, seconds: float, interval_s: float) -> dict:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(TOPIC, 1, 1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, acks=1)
    await producer.start()
    acks: list[float] = []
    try:
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            sent = time.perf_counter()
            await (await producer.send(TOPIC, b"p" * 200, partition=0))
            acks.append(1000 * (time.perf_counter() - sent))
            await asyncio.sleep(interval_s)
    finally:
        await producer.stop()
    acks.sort()
    return {
        "probe_acks": len(acks),
        "ack_ms": {q: percentile(acks, p) for q, p in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))}
        | {"max": round(acks[-1], 1)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", required=True, help="host:port of the broker")
    parser.add_argument("--seconds", type=float, default=28)
    parser.add_argument("--interval-ms", type=float, default=50)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(probe(args.bootstrap, args.seconds, args.interval_ms / 1000))))


if __name__ == "__main__":
    main()
