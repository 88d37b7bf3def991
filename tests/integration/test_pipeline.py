"""End to end on the real embedded broker with a real worker process: every good
transaction decided exactly once, alerts for review/block, malformed records on the
dead-letter topic with their reason, the worker still running, and the stream's
features equal to the batch computation of the same file."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import Counter

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from aegis_app.core import codec, files
from aegis_app.core.settings import (
    ALERTS_TOPIC,
    DEADLETTER_TOPIC,
    DECISIONS_TOPIC,
    LABELS_TOPIC,
    TRANSACTIONS_TOPIC,
)
from aegis_app.harness import simulator
from aegis_app.harness.embedded_broker import EmbeddedBroker, free_port
from aegis_app.harness.stack import read_topic, start_worker, wait_http_ok
from aegis_app.kafka.producer import label_for, make_producer, replay, send_label
from models.lifecycle.experiment import train
from models.lifecycle.training import default_train_window
from tables.batch import compute_features
from tables.features import ALL_FEATURES

pytestmark = pytest.mark.integration

GOOD = dict(
    transaction_id=10**9,
    tx_datetime="2018-05-20 10:00:00",
    customer_id=1,
    terminal_id=1,
    tx_amount=10.0,
)
# (payload, a word the dead-letter reason must contain)
MALFORMED = [
    (b"", "empty"),
    (b"garbage that is not avro", "wire version"),
    (b"\x02" + codec.encode(GOOD)[1:], "wire version 2"),
    (codec.encode(GOOD)[:6], "not a valid Avro"),
    (codec.encode({**GOOD, "tx_amount": -5.0}), "negative"),
    (codec.encode({**GOOD, "tx_amount": float("nan")}), "finite"),
    (codec.encode({**GOOD, "tx_amount": float("inf")}), "finite"),
    (codec.encode({**GOOD, "tx_datetime": "yesterday"}), "tx_datetime"),
    (codec.encode({**GOOD, "merchant_category": "x" * 40_000}), "exceeds"),
]
BAD_LABEL = b"{not json"
# A rate the worker keeps up with: with no backlog the card partitions reach the terminal
# stage close together in event time, the condition for exact terminal features.
REPLAY_RATE = 300


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """A broker of its own (so topics start empty), a trained model, one worker."""
    root = tmp_path_factory.mktemp("pipeline")
    frame = simulator.generate(customers=80, terminals=160, days=40, seed=3)
    data_file = root / "tx.csv"
    files.write_transactions(frame, data_file)
    window = default_train_window(frame["TX_DATETIME"], 7, 7)
    train(frame, root / "models", window, delay_days=7)
    broker = EmbeddedBroker(port=free_port(), log_path=root / "broker.log")
    worker = None
    try:
        broker.start()
        web_port = free_port()
        worker = start_worker(
            broker.url, root / "state", web_port, root / "models", root / "worker.log"
        )
        wait_http_ok(f"http://127.0.0.1:{web_port}/health/", 120, worker)
        yield {
            "broker": broker,
            "worker": worker,
            "web": f"http://127.0.0.1:{web_port}",
            "frame": frame,
            "file": data_file,
        }
    finally:
        if worker is not None:
            worker.stop()
        broker.stop()


async def _produce_malformed(bootstrap: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=1_048_576)
    await producer.start()
    try:
        for i, (payload, _) in enumerate(MALFORMED):
            await producer.send(TRANSACTIONS_TOPIC, value=payload, key=str(i).encode())
        await producer.send(LABELS_TOPIC, value=BAD_LABEL, key=b"1")
        await producer.flush()
    finally:
        await producer.stop()


async def _publish_labels(broker_url: str, frame) -> None:
    """Every label, up front. The worker may use one only from its known time on (the
    feature code enforces it), so having them early changes nothing but removes the race
    between two topics; replay's own label timing is tested in test_producer.py."""
    producer = make_producer(broker_url)
    await producer.start()
    try:
        for _, record, _ in files.iter_frame(frame):
            await send_label(producer, label_for(record, 7))
        await producer.flush()
    finally:
        await producer.stop()


def _wait_for_count(web: str, name: str, expected: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if httpx.get(f"{web}/health/").json()["counts"].get(name, 0) >= expected:
            return
        time.sleep(0.5)
    raise TimeoutError(f"{name} did not reach {expected}")


@pytest.fixture(scope="module")
def decisions(stack):
    """Labels, then the file's transactions and malformed records; collect the outputs."""
    frame = stack["frame"]
    broker_url = stack["broker"].url
    asyncio.run(_publish_labels(broker_url, frame))
    _wait_for_count(stack["web"], "labels_in", len(frame), timeout=120)
    asyncio.run(_produce_malformed(stack["broker"].bootstrap))
    summary = asyncio.run(
        replay(
            files.iter_transactions(stack["file"]),
            broker_url,
            rate=REPLAY_RATE,
            label_delay_days=None,
            progress=False,
        )
    )
    assert summary.sent == len(frame) and not summary.bad_rows
    expected = len(frame)
    records = read_topic(
        broker_url,
        DECISIONS_TOPIC,
        lambda recs: len({r.key for r in recs}) >= expected,
        timeout=300,
    )
    return [json.loads(r.value) for r in records]


def test_every_good_transaction_is_decided_exactly_once(stack, decisions):
    ids = Counter(d["transaction_id"] for d in decisions)
    assert set(ids) == set(stack["frame"]["TRANSACTION_ID"])
    assert max(ids.values()) == 1
    for d in decisions:
        assert d["action"] in ("allow", "review", "block")
        assert 0.0 <= d["score"] <= 1.0
        assert d["model_version"].startswith("v")
        if d["action"] != "allow":
            assert d["reasons"], d


def test_alerts_are_the_review_and_block_decisions(stack, decisions):
    flagged = {d["transaction_id"] for d in decisions if d["action"] != "allow"}
    assert flagged, "a model trained on this data flags some of it"
    records = read_topic(
        stack["broker"].url, ALERTS_TOPIC, lambda recs: len(recs) >= len(flagged), timeout=60
    )
    alerts = [json.loads(r.value) for r in records]
    assert {a["transaction_id"] for a in alerts} == flagged
    assert all(r.key == str(json.loads(r.value)["transaction_id"]).encode() for r in records)


def test_malformed_records_are_dead_lettered_and_the_worker_keeps_going(stack, decisions):
    expected = len(MALFORMED) + 1
    records = read_topic(
        stack["broker"].url, DEADLETTER_TOPIC, lambda recs: len(recs) >= expected, timeout=60
    )
    letters = [json.loads(r.value) for r in records]
    assert len(letters) == expected
    from_transactions = [x for x in letters if x["source_topic"] == TRANSACTIONS_TOPIC]
    reasons = sorted(x["reason"] for x in from_transactions)
    for _, word in MALFORMED:
        assert any(word in reason for reason in reasons), (word, reasons)
    assert [x for x in letters if x["source_topic"] == LABELS_TOPIC][0]["reason"].startswith(
        "label"
    )
    assert all(x["payload_b64"] is not None for x in letters)
    assert stack["worker"].alive
    health = httpx.get(f"{stack['web']}/health/").json()
    assert health["counts"]["dead_letters"] == expected


def test_stream_features_equal_batch_features(stack, decisions):
    frame = stack["frame"]
    batch = compute_features(frame, delay_days=7)
    batch.index = frame["TRANSACTION_ID"].to_numpy()
    mismatches = []
    for d in decisions:
        want = batch.loc[d["transaction_id"]]
        for name in ALL_FEATURES:
            if not math.isclose(d["features"][name], want[name], rel_tol=1e-12, abs_tol=1e-12):
                mismatches.append((d["transaction_id"], name, d["features"][name], want[name]))
    health = httpx.get(f"{stack['web']}/health/").json()
    assert not mismatches, (len(mismatches), mismatches[:4], health)
    assert "skewed_beyond_label_delay" not in health["counts"]


def test_web_view_shows_card_state(stack, decisions):
    card = int(stack["frame"]["CUSTOMER_ID"].iloc[-1])
    body = httpx.get(f"{stack['web']}/cards/{card}/", timeout=10).json()
    assert body["found"] and body["transactions"]
    assert httpx.get(f"{stack['web']}/cards/999999/", timeout=10).status_code == 404
