"""Kinesis to decisions, for real: a moto Kinesis server, the embedded broker, a trained
model, an `aegis worker`, an `aegis sink` and `aegis ingest kinesis` as processes.

Generated transactions and poison records go into a 3-shard stream; mid-run one shard is
split and two are merged, the bridge is SIGKILLed, more records arrive while it is down, and
a restarted bridge resumes from its checkpoints. Every valid transaction must end up decided
once in the result store (one row each, whatever the redelivery), and every poison record on
aegis.deadletter with the shard and sequence number PutRecords gave it.

moto, unlike AWS, writes on to the closed parents after a split or merge and never ends
them (aegis_app/ingest/kinesis.py); so here the parents are read on and their children must
wait, untouched (moto's merge child holds copies of its parents' records). The hand-off to
children is tested against AWS's semantics in tests/aegis_app/ingest/test_bridge.py.
"""

from __future__ import annotations

import base64
import json
import time

import boto3
import pytest

from aegis_app.core import files
from aegis_app.core.settings import DEADLETTER_TOPIC
from aegis_app.harness import simulator
from aegis_app.harness.embedded_broker import EmbeddedBroker, free_port
from aegis_app.harness.kinesis_local import MOTO_ENV, MotoServer
from aegis_app.harness.stack import (
    ManagedProcess,
    aegis_command,
    read_topic,
    start_worker,
    wait_http_ok,
)
from aegis_app.serving.store import Store
from models.lifecycle.experiment import train
from models.lifecycle.training import default_train_window
from tests.aegis_app.ingest.streams import POISON, Generated, as_records, put_all, wait_until

pytestmark = pytest.mark.integration

STREAM = "aegis-integration"
REGION = "us-east-1"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("kinesis")
    training = simulator.generate(customers=80, terminals=160, days=40, seed=3)
    window = default_train_window(training["TX_DATETIME"], 7, 7)
    train(training, root / "models", window, delay_days=7, progress=False)
    broker = EmbeddedBroker(port=free_port(), log_path=root / "broker.log")
    moto = MotoServer(log_path=root / "moto.log")
    procs: list[ManagedProcess] = []
    db_url = f"sqlite:///{root}/store/aegis.db"
    try:
        broker.start()
        moto.start()
        web_port = free_port()
        worker = start_worker(
            broker.url, root / "state", web_port, root / "models", root / "worker.log"
        )
        procs.append(worker)
        sink = ManagedProcess(
            "sink",
            aegis_command("sink", "--broker", broker.url, "--db-url", db_url),
            root / "sink.log",
        ).start()
        procs.append(sink)
        wait_http_ok(f"http://127.0.0.1:{web_port}/health/", 120, worker)
        yield {"root": root, "broker": broker, "moto": moto, "db_url": db_url, "procs": procs}
    finally:
        for proc in reversed(procs):
            proc.stop()
        moto.stop()
        broker.stop()


def start_bridge(stack, name: str) -> ManagedProcess:
    args = aegis_command(
        "ingest", "kinesis", "--stream", STREAM, "--region", REGION,
        "--endpoint-url", stack["moto"].url, "--broker", stack["broker"].url,
        "--db-url", stack["db_url"], "--poll-interval", "0.2", "--shard-sync-interval", "1",
        "--progress-interval", "1", "--max-records", "20",
    )  # fmt: skip
    bridge = ManagedProcess(name, args, stack["root"] / f"{name}.log", dict(MOTO_ENV)).start()
    stack["procs"].append(bridge)
    return bridge


def checkpoints(store: Store) -> dict[str, dict]:
    return store.kinesis_checkpoints(STREAM)


def test_reshard_kill_and_restart_decide_every_transaction_once(stack):
    client = boto3.client(
        "kinesis",
        endpoint_url=stack["moto"].url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_stream(StreamName=STREAM, ShardCount=3)
    frame = simulator.generate(customers=30, terminals=60, days=15, seed=5)
    txs = [Generated(raw, record) for record, raw in files.good_rows(files.iter_frame(frame))]
    assert 300 <= len(txs) <= 600, len(txs)
    phases = [txs[: len(txs) * 2 // 5], txs[len(txs) * 2 // 5 : len(txs) * 7 // 10]]
    phases.append(txs[len(txs) * 7 // 10 :])
    poison_at: dict[tuple[str, str], bytes] = {}  # (shard, sequence) -> data

    def put_phase(number: int) -> None:
        put_all(client, STREAM, as_records(phases[number]))
        poison = [(f"poison-{number}-{i}", data) for i, (data, _) in enumerate(POISON)]
        for (_, data), where in zip(poison, put_all(client, STREAM, poison)):
            poison_at[where] = data

    store = Store(stack["db_url"])
    try:
        put_phase(0)
        first = start_bridge(stack, "bridge-1")
        phase0 = {tx.transaction_id for tx in phases[0]}
        wait_until(lambda: phase0 <= set(store.transaction_ids()), 90, "phase 0 decided")

        shards = client.list_shards(StreamName=STREAM)["Shards"]
        hash_range = shards[0]["HashKeyRange"]
        middle = (int(hash_range["StartingHashKey"]) + int(hash_range["EndingHashKey"])) // 2
        client.split_shard(
            StreamName=STREAM, ShardToSplit=shards[0]["ShardId"], NewStartingHashKey=str(middle)
        )
        client.merge_shards(
            StreamName=STREAM,
            ShardToMerge=shards[1]["ShardId"],
            AdjacentShardToMerge=shards[2]["ShardId"],
        )
        before = {s: c["sequence_number"] for s, c in checkpoints(store).items()}
        put_phase(1)
        # Killed mid-stream: after its next checkpoint, while phase 1 is still being read.
        wait_until(
            lambda: {s: c["sequence_number"] for s, c in checkpoints(store).items()} != before,
            30,
            "a checkpoint in phase 1",
        )
        first.kill()
        assert len(store.transaction_ids()) < len(txs)

        put_phase(2)  # while no bridge runs
        second = start_bridge(stack, "bridge-2")
        valid = {tx.transaction_id for tx in txs}
        wait_until(
            lambda: valid <= set(store.transaction_ids()),
            90,
            f"every transaction decided\n{second.log_tail()}",
        )
        letters = read_topic(
            stack["broker"].url,
            DEADLETTER_TOPIC,
            lambda recs: set(poison_at) <= _locations(recs),
            timeout=30,
        )
        time.sleep(1.5)  # a progress line and a shard listing after the last record
        assert second.alive, second.log_tail()
        assert second.stop() == 0, second.log_tail()

        assert store.count_decisions() == len(valid), "one row per transaction"
        assert set(store.transaction_ids()) == valid
        found = [json.loads(r.value) for r in letters]
        assert set(poison_at) <= _locations(letters)
        for letter in found:
            where = (letter["shard_id"], letter["sequence_number"])
            assert where in poison_at, ("a dead letter for a valid record", letter)
            assert base64.b64decode(letter["payload_b64"]) == poison_at[where]
            assert letter["source_topic"] == f"kinesis:{STREAM}" and letter["reason"]

        rows = checkpoints(store)
        listing = client.list_shards(StreamName=STREAM)["Shards"]
        parents = {s["ShardId"] for s in listing if "ParentShardId" not in s}
        assert set(rows) == parents, "moto's children wait: their parents never end"
        log = (stack["root"] / "bridge-2.log").read_text()
        summary = json.loads(
            [line for line in log.splitlines() if line.startswith('{"stream"')][-1]
        )
        assert 0 < summary["forwarded"] < len(valid), "the restart resumed from checkpoints"
        assert f"kinesis {STREAM}: " in log and "3 waiting for a parent" in log
        assert "Traceback" not in log
    finally:
        store.close()


def _locations(records) -> set[tuple[str, str]]:
    out = set()
    for record in records:
        letter = json.loads(record.value)
        if "shard_id" in letter:
            out.add((letter["shard_id"], letter["sequence_number"]))
    return out
