"""What a tailing consumer costs the embedded broker as a partition fills with record batches.

    .venv/bin/python scripts/tansu_fetch_cost.py --batches 10000 --partitions 4

Starts its own Tansu on a free loopback port, creates topic ``t``, writes ``--batches``
one-record batches spread over the partitions (or all into partition 0 with
``--preload-one``), then for ``--seconds`` sends 200 one-record produces per second
round-robin (or only to ``--target``) while one consumer tails every partition.
Prints one JSON line: the broker's CPU (share of one core), produce ack p50/p99 and how
many fetch requests the consumer sent. ``--fetch-interval-ms`` spaces the consumer's fetches
with aegis_app/kafka/fetch_pacing.py (``AEGIS_FETCH_INTERVAL_MS``), ``--no-consumer`` only
produces, and ``--single-reads N`` instead times N lone fetches of partition 0's newest
record (broker CPU per read). Stops the broker on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from aegis_app.harness.embedded_broker import free_port, tansu_binary
from aegis_app.kafka import clients
from aegis_app.kafka.admin import wait_for_broker_async
from aegis_app.kafka.clients import KafkaConnection


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(args: argparse.Namespace) -> dict:
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    broker = subprocess.Popen(
        [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    bootstrap = f"127.0.0.1:{port}"
    try:
        await wait_for_broker_async(bootstrap, timeout=20)
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        await admin.create_topics([NewTopic("t", args.partitions, 1)])
        await admin.close()
        # max_batch_size below two records: every record becomes its own batch, as the
        # API's linger_ms=1 producer writes them at 200 requests/s.
        loader = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, max_batch_size=300)
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
        await loader.start()
        await producer.start()
        for start in range(0, args.batches, 500):
            sends = []
            for i in range(start, min(start + 500, args.batches)):
                partition = 0 if args.preload_one else i % args.partitions
                sends.append(await loader.send("t", b"x" * 200, partition=partition))
            await asyncio.gather(*sends)
        await loader.stop()
        if args.single_reads:
            await producer.stop()
            return await single_reads(bootstrap, broker.pid, args)
        # Paced as AEGIS_FETCH_INTERVAL_MS paces Aegis's consumers (0: not spaced); its
        # pacer counts the fetch requests it sends either way.
        connection = KafkaConnection.from_url(bootstrap, fetch_interval_ms=args.fetch_interval_ms)
        consumer = clients.consumer(
            connection,
            paced=True,
            fetch_max_wait_ms=args.fetch_max_wait_ms,
            fetch_min_bytes=args.fetch_min_bytes,
        )
        consumed = 0

        def fetches() -> int:
            pacer = getattr(consumer, "fetch_pacer", None)  # set once the consumer started
            return pacer.sent if pacer is not None else 0

        async def tail() -> None:
            nonlocal consumed
            await consumer.start()
            partitions = [TopicPartition("t", p) for p in range(args.partitions)]
            consumer.assign(partitions)
            await consumer.seek_to_end(*partitions)
            while True:
                records = await consumer.getmany(timeout_ms=1000)
                consumed += sum(len(batch) for batch in records.values())

        tailing = asyncio.create_task(asyncio.sleep(0) if args.no_consumer else tail())
        await asyncio.sleep(2)
        cpu0, t0, fetches0, acks = cpu_seconds(broker.pid), time.time(), fetches(), []
        for i in range(200 * args.seconds):
            sent = time.perf_counter()
            partition = args.target if args.target is not None else i % args.partitions
            await (await producer.send("t", b"y" * 200, partition=partition))
            acks.append(time.perf_counter() - sent)
            await asyncio.sleep(max(0.0, t0 + (i + 1) / 200 - time.time()))
        elapsed = time.time() - t0
        result = {
            "batches": args.batches,
            "partitions": args.partitions,
            "broker_cpu_pct": round(100 * (cpu_seconds(broker.pid) - cpu0) / elapsed),
            "ack_p50_ms": round(1000 * sorted(acks)[len(acks) // 2], 1),
            "ack_p99_ms": round(1000 * sorted(acks)[int(len(acks) * 0.99)], 1),
            "fetch_requests": fetches() - fetches0,
            "consumed": consumed,
        }
        tailing.cancel()
        if not args.no_consumer:
            await consumer.stop()
        await producer.stop()
        return result
    finally:
        broker.kill()
        broker.wait()


async def single_reads(bootstrap: str, broker_pid: int, args: argparse.Namespace) -> dict:
    """Broker CPU and time for one fetch of a partition's newest records, nothing else
    running: what one read of new data costs at this partition size."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    tp = TopicPartition("t", 0)
    consumer.assign([tp])
    end = (await consumer.end_offsets([tp]))[tp]
    cpu0, t0 = cpu_seconds(broker_pid), time.time()
    for i in range(args.single_reads):
        consumer.seek(tp, max(0, end - 1 - i))
        await consumer.getmany(tp, timeout_ms=5000)
    elapsed = time.time() - t0
    await consumer.stop()
    return {
        "batches_in_partition_0": args.batches if args.preload_one else None,
        "reads": args.single_reads,
        "ms_per_read": round(1000 * elapsed / args.single_reads, 1),
        "broker_cpu_ms_per_read": round(
            1000 * (cpu_seconds(broker_pid) - cpu0) / args.single_reads, 1
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--preload-one", action="store_true", help="all batches in partition 0")
    parser.add_argument("--target", type=int, help="produce only to this partition")
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--fetch-max-wait-ms", type=int, default=500)
    parser.add_argument("--fetch-min-bytes", type=int, default=1)
    parser.add_argument(
        "--fetch-interval-ms", type=int, default=0, help="least time between two fetches"
    )
    parser.add_argument(
        "--single-reads", type=int, default=0, help="only time N single fetches of partition 0"
    )
    parser.add_argument("--no-consumer", action="store_true", help="produce only, nobody tails")
    print(json.dumps(asyncio.run(measure(parser.parse_args()))))


if __name__ == "__main__":
    main()
