"""Records a second through one `aegis ingest kinesis` process: moto's Kinesis server in,
the embedded Tansu broker out, both on loopback. Figures are against moto, not AWS.

    .venv/bin/python scripts/kinesis_throughput.py --records 20000 --shards 4 --max-records 1000

Starts a moto server and an embedded broker, fills a fresh stream with `--records`
generated transactions (partition key = card, before the bridge starts, so the bridge reads
a backlog), then starts the bridge as its own process and polls its checkpoints in the
result store until every shard's checkpoint is the last sequence number PutRecords gave it,
i.e. until the broker has acknowledged every record. Prints one JSON line: records a second
from the first checkpoint to the last (the steady rate) and from the process start (with
Python start-up), and the CPU seconds per 1,000 records of the bridge and of moto's server.
Runs until done; the bridge is stopped with SIGTERM and its own summary is included.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aegis_app.core import config as configs  # noqa: E402
from aegis_app.core import files  # noqa: E402
from aegis_app.harness import simulator  # noqa: E402
from aegis_app.harness.embedded_broker import EmbeddedBroker, free_port  # noqa: E402
from aegis_app.harness.kinesis_local import MOTO_ENV, MotoServer  # noqa: E402
from aegis_app.ingest.conversion import kinesis_data  # noqa: E402
from aegis_app.serving.store import Store  # noqa: E402

STREAM = "aegis-throughput"
REGION = "us-east-1"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def transactions(count: int) -> list[tuple[str, bytes]]:
    frame = simulator.generate(customers=max(50, count // 40), terminals=2000, days=60, seed=0)
    if len(frame) < count:
        raise SystemExit(f"the simulation gave {len(frame)} transactions, fewer than {count}")
    rows = files.iter_frame(frame.head(count))
    # The bridge runs the default preset (pinned below): the simulator's schema.
    return [(record["card"], kinesis_data(raw)) for record, raw in files.good_rows(rows)]


def fill(client, records: list[tuple[str, bytes]]) -> dict[str, str]:
    """PutRecords 500 at a time; the last sequence number of each shard."""
    last: dict[str, str] = {}
    for start in range(0, len(records), 500):
        chunk = records[start : start + 500]
        answer = client.put_records(
            StreamName=STREAM, Records=[{"PartitionKey": k, "Data": d} for k, d in chunk]
        )
        if answer.get("FailedRecordCount"):
            raise SystemExit(f"PutRecords failed: {answer}")
        for entry in answer["Records"]:
            last[entry["ShardId"]] = entry["SequenceNumber"]
    return last


def measure(args: argparse.Namespace, workdir: Path) -> dict:
    import boto3

    records = transactions(args.records)
    with (
        MotoServer(log_path=workdir / "moto.log") as moto,
        EmbeddedBroker(port=free_port(), log_path=workdir / "broker.log") as broker,
    ):
        client = boto3.client(
            "kinesis",
            endpoint_url=moto.url,
            region_name=REGION,
            aws_access_key_id=MOTO_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=MOTO_ENV["AWS_SECRET_ACCESS_KEY"],
        )
        client.create_stream(StreamName=STREAM, ShardCount=args.shards)
        filled = time.monotonic()
        last = fill(client, records)
        fill_seconds = time.monotonic() - filled
        db_url = f"sqlite:///{workdir}/aegis.db"
        store = Store(db_url)  # migrated before the bridge starts, so polling never races it
        command = [
            sys.executable, "-m", "aegis_app.cli.main", "ingest", "kinesis",
            "--stream", STREAM, "--region", REGION, "--endpoint-url", moto.url,
            "--broker", broker.url, "--db-url", db_url, "--max-records", str(args.max_records),
            "--poll-interval", "0.2", "--progress-interval", "2",
        ]  # fmt: skip
        moto_cpu = cpu_seconds(moto.pid)
        started = time.monotonic()
        log = open(workdir / "bridge.log", "w")  # noqa: SIM115 (closed below)
        bridge = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            # moto's credentials through the AWS chain; the simulator's schema
            env={**os.environ, **MOTO_ENV, "AEGIS_CONFIG": str(configs.resolve(None))},
        )
        first = None
        try:
            while True:
                if bridge.poll() is not None:
                    raise SystemExit(f"the bridge exited: {(workdir / 'bridge.log').read_text()}")
                done = {
                    s: c["sequence_number"] for s, c in store.kinesis_checkpoints(STREAM).items()
                }
                if done and first is None:
                    first = time.monotonic()
                if done == last:
                    break
                if time.monotonic() - started > args.timeout:
                    raise SystemExit(f"not done within {args.timeout:g}s: {done} != {last}")
                time.sleep(0.05)
            finished = time.monotonic()
            bridge_cpu = cpu_seconds(bridge.pid)
            moto_cpu = cpu_seconds(moto.pid) - moto_cpu
            bridge.send_signal(signal.SIGTERM)
            out, _ = bridge.communicate(timeout=60)
        finally:
            if bridge.poll() is None:
                bridge.kill()
                bridge.wait()
            log.close()
            store.close()
    summary = json.loads(out.strip().splitlines()[-1])
    steady = finished - first if first else None
    return {
        "records": args.records,
        "shards": args.shards,
        "max_records": args.max_records,
        "fill_seconds": round(fill_seconds, 2),
        "seconds_from_start": round(finished - started, 2),
        "rate_from_start_per_s": round(args.records / (finished - started), 1),
        "seconds_first_to_last_checkpoint": round(steady, 2) if steady else None,
        "rate_steady_per_s": round(args.records / steady, 1) if steady else None,
        "bridge_cpu_s_per_1000": round(bridge_cpu / args.records * 1000, 3),
        "moto_cpu_s_per_1000": round(moto_cpu / args.records * 1000, 3),
        "bridge_summary": summary,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--max-records", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kinesis-throughput-") as tmp:
        print(json.dumps(measure(args, Path(tmp))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
