"""The API and the stream agree: a real broker, a real `aegis worker` and a real
`aegis api` (with its sink). Transactions replayed onto aegis.transactions are decided by
the stream; the same transactions POSTed to the API get the same score (same feature
state, same model); and the sink keeps exactly one row per transaction in the store,
although the API's re-publication makes the stream decide each one a second time."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time

import httpx
import numpy as np
import pytest

from aegis_app.core import files
from aegis_app.core.config import load, resolve
from aegis_app.core.settings import DECISIONS_TOPIC
from aegis_app.harness import simulator
from aegis_app.harness.embedded_broker import EmbeddedBroker, free_port
from aegis_app.harness.request_bodies import request_bodies
from aegis_app.harness.stack import (
    ManagedProcess,
    aegis_command,
    read_topic,
    start_api,
    start_worker,
    wait_http_ok,
)
from aegis_app.ingest.replay import replay
from aegis_app.serving.store import Store

pytestmark = pytest.mark.integration

TOKEN = "integration-token-5b0c"
# The API scores one request (or a few) per model call, the stream hundreds: scores must
# not depend on the batch. Every detector is batch-invariant to ~1e-12 except an
# autoencoder whose numpy forward pass runs in float32 (sgemm rounding depends on the
# batch shape, ~1e-8 on the ensemble); with a float64 forward pass it is ~3e-12.
SCORE_TOLERANCE = 1e-9
FLOAT32_AUTOENCODER_TOLERANCE = 1e-7


def score_tolerance(model_dir) -> float:
    from models.lifecycle import registry

    detector = registry.load(model_dir).detectors.get("autoencoder")
    weights = getattr(detector, "weights_", None) or []
    if any(kernel.dtype == np.float32 for kernel, _ in weights):
        return FLOAT32_AUTOENCODER_TOLERANCE
    return SCORE_TOLERANCE


AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("api-stream")
    training = simulator.generate(customers=80, terminals=160, days=40, seed=3)
    files.write_transactions(training, root / "train.csv")
    subprocess.run(
        [
            *aegis_command("train", "--data", str(root / "train.csv")),
            "--quiet",
            "--model-dir",
            str(root / "models"),
        ],
        check=True,
        timeout=600,
        capture_output=True,
    )
    broker = EmbeddedBroker(port=free_port(), log_path=root / "broker.log")
    procs: list[ManagedProcess] = []
    try:
        broker.start()
        web_port, api_port = free_port(), free_port()
        worker = start_worker(
            broker.url,
            root / "state",
            web_port,
            root / "models",
            root / "worker.log",
            env={"AEGIS_MODEL_DIR": str(root / "models")},
        )
        procs.append(worker)
        db_url = f"sqlite:///{root}/store/aegis.db"
        api = start_api(
            broker.url,
            api_port,
            db_url,
            TOKEN,
            root / "models",
            f"http://127.0.0.1:{web_port}",
            root / "api.log",
        )
        procs.append(api)
        wait_http_ok(f"http://127.0.0.1:{web_port}/health/", 120, worker)
        wait_http_ok(f"http://127.0.0.1:{api_port}/readyz", 60, api)
        yield {
            "broker": broker,
            "worker": worker,
            "api": api,
            "api_url": f"http://127.0.0.1:{api_port}",
            "db_url": db_url,
            "root": root,
        }
    finally:
        for proc in reversed(procs):
            proc.stop()
        broker.stop()


def _metric(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if re.match(rf"^{name}(\{{.*\}})? ", line):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_api_and_stream_give_the_same_score_and_the_store_one_row_each(stack):
    frame = simulator.generate(customers=30, terminals=60, days=15, seed=5)
    rows = [record for _, record, _ in files.iter_frame(frame)]
    assert 200 <= len(rows) <= 700, len(rows)
    ids = {record["transaction_id"] for record in rows}  # text, as the decisions carry them
    summary = asyncio.run(
        replay(
            files.iter_frame(frame),
            stack["broker"].url,
            rate=300,
            label_delay_days=None,
            progress=False,
        )
    )
    assert summary.sent == len(rows)
    records = read_topic(
        stack["broker"].url,
        DECISIONS_TOPIC,
        lambda recs: len({r.key for r in recs}) >= len(ids),
        timeout=240,
    )
    stream = {}
    for record in records:
        decision = json.loads(record.value)
        stream.setdefault(decision["transaction_id"], decision)
    assert set(stream) == ids

    tolerance = score_tolerance(stack["root"] / "models")
    mismatches = []
    with httpx.Client(base_url=stack["api_url"], headers=AUTH, timeout=30) as client:
        for body in request_bodies(frame, load(resolve(None))):
            response = client.post("/v1/transactions", json=body)
            assert response.status_code == 200, response.text
            api = response.json()
            want = stream[api["transaction_id"]]
            if abs(api["score"] - want["score"]) > tolerance or api["action"] != want["action"]:
                mismatches.append((api["transaction_id"], api["score"], want["score"]))
            assert api["features"] == pytest.approx(want["features"], rel=1e-12, abs=1e-12)
            assert api["model_version"] == want["model_version"]
    assert not mismatches, (len(mismatches), mismatches[:5])

    # Every transaction is now decided twice by the stream (replay + API); the sink
    # stores them all, with exactly one row per transaction.
    deadline = time.monotonic() + 240
    metrics = ""
    while time.monotonic() < deadline:
        metrics = httpx.get(f"{stack['api_url']}/metrics", headers=AUTH, timeout=10).text
        if (
            _metric(metrics, "aegis_decisions_total") >= 2 * len(ids)
            and _metric(metrics, "aegis_sink_consumer_lag") == 0
        ):
            break
        time.sleep(1.0)
    else:
        pytest.fail(f"sink did not catch up:\n{metrics}\n{stack['api'].log_tail()}")
    store = Store(stack["db_url"], migrate=False)
    try:
        assert store.count_decisions() == len(ids)
        assert set(store.transaction_ids()) == ids
        some = next(iter(ids))
        assert store.get_decision(some)["score"] == pytest.approx(
            stream[some]["score"], abs=tolerance
        )
    finally:
        store.close()
    alerts = httpx.get(f"{stack['api_url']}/v1/alerts", headers=AUTH, params={"limit": 500}).json()
    flagged = {t for t, d in stream.items() if d["action"] != "allow"}
    assert {a["transaction_id"] for a in alerts["items"]} == flagged
    assert _metric(metrics, "aegis_decision_latency_seconds_count") >= 2 * len(ids)
    assert stack["worker"].alive and stack["api"].alive
