"""`aegis bench`: throughput and latency of the full pipeline, measured end to end.

Starts the embedded broker (unless --broker is given) and K worker processes, produces N
generated transactions (as fast as possible, or at R per second), and reads
aegis.decisions back. Latency is the decision record's timestamp minus the transaction
record's (both stamped by their producers on this machine's clock).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from aegis_app.core import config as configs
from aegis_app.core.files import good_rows, iter_frame, simulator_config
from aegis_app.core.pacing import Pacer
from aegis_app.core.settings import (
    DECISIONS_TOPIC,
    TRANSACTIONS_TOPIC,
    Settings,
    kafka_environment,
)
from aegis_app.harness import simulator
from aegis_app.harness.embedded_broker import EmbeddedBroker, free_port
from aegis_app.harness.stack import ManagedProcess, read_topic_async, start_worker, wait_http_ok
from aegis_app.ingest.replay import Outgoing, ReplayEncoder
from aegis_app.kafka.clients import KafkaConnection
from aegis_app.kafka.producer import make_producer, send_transaction
from models.lifecycle import registry

TX_PER_DAY = 9_800  # simulator defaults: ~9.8k transactions a day


def bench_transactions(n: int, seed: int = 0) -> list[Outgoing]:
    """N transactions of the default population (5,000 cards), in time order, encoded as
    `aegis replay` sends them (the default preset's wire format, keyed by card)."""
    days = max(2, math.ceil(n / TX_PER_DAY) + 1)
    frame = simulator.generate(days=days, seed=seed).head(n)
    encoder = ReplayEncoder(simulator_config())
    return [encoder.outgoing(record, raw) for record, raw in good_rows(iter_frame(frame))]


def ensure_bench_model(model_dir: Path) -> None:
    if registry.active_version(model_dir):
        return
    from models.lifecycle.experiment import train
    from models.lifecycle.training import default_train_window

    frame = simulator.generate(customers=2000, terminals=4000, days=60, seed=1)
    window = default_train_window(frame["TX_DATETIME"], 7, 7)
    train(frame, model_dir, window, delay_days=7, config=simulator_config())


async def _produce(broker: KafkaConnection, txs: list[Outgoing], rate: float | None) -> float:
    producer = make_producer(broker)
    await producer.start()
    pacer = Pacer(rate)
    try:
        for i, tx in enumerate(txs):
            await send_transaction(producer, tx.payload, tx.key)
            await pacer.wait(i + 1)
        await producer.flush()
    finally:
        await producer.stop()
    return pacer.elapsed()


async def _run(broker: KafkaConnection, txs: list[Outgoing], rate: float | None, timeout: float):
    expected = {tx.transaction_id for tx in txs}
    reader = asyncio.create_task(
        read_topic_async(
            broker,
            DECISIONS_TOPIC,
            lambda recs: len({r.key for r in recs}) >= len(expected),
            timeout,
        )
    )
    produce_seconds = await _produce(broker, txs, rate)
    return produce_seconds, await reader


def _wait_all_assigned(web_ports: list[int], partitions: int, timeout: float) -> None:
    """Until the workers between them own every input partition (the group has settled)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        owned = set()
        for port in web_ports:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health/", timeout=2).json()
            except (httpx.HTTPError, ValueError):
                continue
            owned |= {
                p
                for p in health.get("assigned_partitions", [])
                if p.startswith(TRANSACTIONS_TOPIC + "/")
            }
        if len(owned) >= partitions:
            return
        time.sleep(0.5)
    raise TimeoutError("workers did not take all partitions")


def run(
    transactions: int,
    workers: int = 1,
    rate: float | None = None,
    broker_url: str | None = None,
    model_dir: Path | None = None,
    partitions: int | None = None,
    timeout: float = 600.0,
    settings: Settings | None = None,
    latencies_out: Path | None = None,
) -> dict:
    """`broker_url`: an existing Kafka, reached with `settings`' TLS / SASL options (the
    workers get them through their AEGIS_* variables); None: a fresh embedded broker,
    plaintext. `latencies_out`: a CSV of every transaction's latency, in decision order."""
    conf = settings or Settings.from_env()
    partitions = partitions or conf.partitions
    root = Path(tempfile.mkdtemp(prefix="aegis-bench-"))
    model_dir = Path(model_dir or root / "models")
    ensure_bench_model(model_dir)
    txs = bench_transactions(transactions)
    broker = None
    if broker_url is None:
        broker = EmbeddedBroker(port=free_port(), log_path=root / "broker.log").start()
        broker_url = broker.url
        conf = conf.with_(kafka_security_protocol="PLAINTEXT")
    connection = KafkaConnection.from_settings(conf.with_(kafka_broker=broker_url))
    procs: list[ManagedProcess] = []
    finished = False
    try:
        ports = [free_port() for _ in range(workers)]
        env = {
            "AEGIS_PARTITIONS": str(partitions),
            # The default preset, whatever config started the bench: the data is the
            # simulator's.
            "AEGIS_CONFIG": str(configs.resolve(None)),
            **kafka_environment(conf),
        }
        for i, port in enumerate(ports):
            procs.append(
                start_worker(
                    broker_url,
                    root / f"state-{i}",
                    port,
                    model_dir,
                    root / f"worker-{i}.log",
                    env=env,
                )
            )
        for proc, port in zip(procs, ports):
            wait_http_ok(f"http://127.0.0.1:{port}/health/", 180, proc)
        _wait_all_assigned(ports, partitions, 120)
        cpu_before = sum(process_cpu_seconds(proc.proc.pid) for proc in procs)
        produce_seconds, records = asyncio.run(_run(connection, txs, rate, timeout))
        counts = [
            httpx.get(f"http://127.0.0.1:{p}/health/", timeout=5).json()["counts"] for p in ports
        ]
        cpu_seconds = sum(process_cpu_seconds(proc.proc.pid) for proc in procs) - cpu_before
        finished = True
    finally:
        for proc in procs:
            proc.stop()
        if broker is not None:
            broker.stop()
        if not finished:  # kept for a look: the workers' and the broker's logs
            print(f"aegis bench: its logs and state are kept in {root}", file=sys.stderr)
    shutil.rmtree(root, ignore_errors=True)  # a run's state, logs and model: MBs each
    summary = summarize(txs, records, produce_seconds, counts, workers, rate)
    if latencies_out is not None:
        write_latencies(records, latencies_out)
    # CPU the workers spent on this load (start-up excluded): steadier than wall-clock
    # throughput on a shared 2-core machine, so it is what to compare between changes.
    summary["worker_cpu_ms_per_tx"] = round(1000 * cpu_seconds / max(len(txs), 1), 3)
    return summary


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def write_latencies(records, path: Path) -> None:
    """transaction_id, ingested_ms, decided_ms, latency_ms of each transaction's first
    decision (where a tail comes from: the start, a pause, throughout)."""
    first_seen = first_decisions(records)
    lines = ["transaction_id,ingested_ms,decided_ms,latency_ms"]
    for key, record in first_seen.items():
        ingested = json.loads(record.value)["ingested_ms"]
        decided = record.timestamp
        lines.append(f"{key.decode()},{ingested},{decided},{decided - ingested}")
    Path(path).write_text("\n".join(lines) + "\n")


def first_decisions(records) -> dict[bytes, object]:
    """Transaction id -> its first decision record (a redelivery may decide one twice)."""
    first_seen: dict[bytes, object] = {}
    for record in records:
        first_seen.setdefault(record.key, record)
    return first_seen


def summarize(txs, records, produce_seconds, counts, workers, rate) -> dict:
    first_seen = first_decisions(records)
    decisions = [json.loads(r.value) for r in first_seen.values()]
    latencies = np.array(
        [r.timestamp - d["ingested_ms"] for r, d in zip(first_seen.values(), decisions)],
        dtype=float,
    )
    start_ms = min(d["ingested_ms"] for d in decisions)
    end_ms = max(r.timestamp for r in first_seen.values())
    scored = sum(c.get("scored", 0) for c in counts)
    score_us = sum(c.get("score_us_total", 0) for c in counts)
    score_cpu_us = sum(c.get("score_cpu_us_total", 0) for c in counts)
    batches = sum(c.get("score_batches", 0) for c in counts)
    return {
        "transactions": len(txs),
        "decided": len(decisions),
        "duplicate_decisions": len(records) - len(first_seen),
        "workers": workers,
        "rate_offered": rate,
        "produce_seconds": round(produce_seconds, 2),
        "throughput_tps": round(len(decisions) / max((end_ms - start_ms) / 1000, 1e-3), 1),
        # From the first transaction's record to the first decision's: what a burst waits
        # before anything is decided (counted in throughput_tps too).
        "first_decision_ms": min(r.timestamp for r in first_seen.values()) - start_ms,
        "latency_ms": {
            "p50": round(float(np.percentile(latencies, 50)), 1),
            "p95": round(float(np.percentile(latencies, 95)), 1),
            "p99": round(float(np.percentile(latencies, 99)), 1),
            "max": round(float(latencies.max()), 1),
        },
        # Wall time of the scorer's batch work (waits for the GIL, which the event loop
        # holds most of the time, included), and the scoring thread's own CPU time.
        "score_us_per_event": round(score_us / scored, 1) if scored else None,
        "score_cpu_us_per_event": round(score_cpu_us / scored, 1) if scored else None,
        "events_per_score_batch": round(scored / batches, 1) if batches else None,
    }
