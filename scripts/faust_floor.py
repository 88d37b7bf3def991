"""What Faust itself costs per event on this machine, with no Aegis code in the agent.

    .venv/bin/python scripts/faust_floor.py [--events 40000] [--modes none,send,...]

For each mode: a fresh embedded broker, N small records pre-loaded on a 4-partition topic,
then a one-agent Faust worker (same Faust, aiokafka and RocksDB as Aegis) that reads them
all; prints JSON with events per second for each mode. The modes, per event:

    none        consume only
    send        consume + one Faust ``Topic.send``
    table       consume + one table write (Faust sends its changelog record)
    table_send  consume + one table write + one ``Topic.send``
    raw_send    consume + one send on the aiokafka producer under Faust
                (what aegis_app/raw_producer.py does)

An Aegis transaction is one consumed record per stateful entity (the transaction, then one
aegis.by-entity hop per further entity: two for the Handbook preset), one table write per
entity and at least two sends (the hop, the decision), so these figures bound
what one worker process can reach, whatever Aegis's own code costs (BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aegis_app.harness.embedded_broker import EmbeddedBroker, free_port  # noqa: E402
from aegis_app.kafka.admin import ensure_topics  # noqa: E402

MODES = ("none", "send", "table", "table_send", "raw_send")

# The worker side: a standalone Faust app, run with `faust -A floor_app worker`.
FLOOR_APP = textwrap.dedent(
    """
    import os, time, faust

    MODE, N = os.environ["FLOOR_MODE"], int(os.environ["FLOOR_EVENTS"])
    app = faust.App(
        "floor", broker=os.environ["FLOOR_BROKER"], store="rocksdb://",
        datadir=os.environ["FLOOR_DATA"], topic_partitions=4, value_serializer="raw",
        key_serializer="raw", web_enabled=False, consumer_auto_offset_reset="earliest",
        broker_rebalance_timeout=6, broker_session_timeout=10, broker_heartbeat_interval=2,
        producer_linger_ms=50,
    )
    source = app.topic("floor-src", partitions=4)
    sink = app.topic("floor-dst", partitions=4)
    table = app.Table("t", key_type=str, partitions=4)
    state = {"seen": 0, "started": None}

    @app.agent(source)
    async def hop(stream):
        async for event in stream.events():
            if state["started"] is None:
                state["started"] = time.monotonic()
            if MODE in ("table", "table_send"):
                table[event.key.decode()] = event.value.decode()
            if MODE in ("send", "table_send"):
                await sink.send(key=event.key, value=event.value)
            elif MODE == "raw_send":
                await app.producer._ensure_producer().send("floor-dst", event.value, key=event.key)
            state["seen"] += 1
            if state["seen"] == N:
                rate = N / (time.monotonic() - state["started"])
                with open(os.environ["FLOOR_RESULT"], "w") as out:
                    out.write(str(rate))
                os._exit(0)
    """
)


async def _preload(bootstrap: str, events: int) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    await producer.start()
    try:
        for i in range(events):
            await producer.send("floor-src", key=str(i % 5000).encode(), value=b"x" * 200)
        await producer.flush()
    finally:
        await producer.stop()


def run_mode(mode: str, events: int, work: Path, timeout: float) -> float:
    broker = EmbeddedBroker(port=free_port(), log_path=work / f"broker-{mode}.log").start()
    try:
        ensure_topics(broker.bootstrap, ["floor-src", "floor-dst", "floor-t-changelog"], 4)
        asyncio.run(_preload(broker.bootstrap, events))
        result = work / f"result-{mode}"
        env = {
            **os.environ,
            "FLOOR_MODE": mode,
            "FLOOR_EVENTS": str(events),
            "FLOOR_BROKER": broker.url,
            "FLOOR_DATA": str(work / f"data-{mode}"),
            "FLOOR_RESULT": str(result),
            "PYTHONPATH": str(work),
        }
        faust = Path(sys.executable).with_name("faust")
        with open(work / f"worker-{mode}.log", "w") as log:
            proc = subprocess.Popen(
                [str(faust), "-A", "floor_app", "worker", "-l", "warn"],
                cwd=work,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise RuntimeError(f"mode {mode}: no result in {timeout} s ({log.name})") from None
        return float(result.read_text())
    finally:
        broker.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--timeout", type=float, default=180.0)
    args = parser.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    unknown = set(modes) - set(MODES)
    if unknown:
        parser.error(f"unknown mode(s): {', '.join(sorted(unknown))}")
    with tempfile.TemporaryDirectory(prefix="aegis-floor-") as tmp:
        work = Path(tmp)
        (work / "floor_app.py").write_text(FLOOR_APP)
        rates = {}
        for mode in modes:
            rates[mode] = round(run_mode(mode, args.events, work, args.timeout))
            print(f"{mode}: {rates[mode]} events/s", file=sys.stderr, flush=True)
    print(json.dumps({"events": args.events, "events_per_second": rates}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
