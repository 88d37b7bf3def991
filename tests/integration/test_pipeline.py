"""End to end on the real embedded broker with a real worker process, for both shipped
presets (the Handbook's generated data, and the public Sparkov slice in its own schema):
every good transaction decided exactly once, alerts for review/block, malformed records
on the dead-letter topic with their reason, the worker still running, and the stream's
features equal to the batch computation of the same file, label-based ones included."""

from __future__ import annotations

import asyncio
import json
import math
from collections import Counter
from pathlib import Path

import httpx
import pandas as pd
import pytest

from aegis_app.cli.main import main
from aegis_app.core.codec import RecordCodec
from aegis_app.core.config import Config, load
from aegis_app.core.settings import (
    ALERTS_TOPIC,
    DEADLETTER_TOPIC,
    DECISIONS_TOPIC,
    LABELS_TOPIC,
    TRANSACTIONS_TOPIC,
)
from aegis_app.core.source import SourceReader
from aegis_app.core.timerules import DAY
from aegis_app.harness import simulator
from aegis_app.harness.stack import read_topic
from agents.pipeline import card_entity_of
from tables.engine import StreamEngine, compute_features
from tests.integration.running import own_broker, running_worker
from tests.integration.streams import (
    feature_mismatches,
    file_labels,
    produce,
    wait_for_count,
    wait_for_entity_states,
)
from tests.integration.streams import health as worker_health

pytestmark = pytest.mark.integration

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
BAD_LABEL = b"{not json"
# Delayed entity features are exact while no transaction reaches an entity's state a label
# delay of event time behind that state's newest event (docs/FEATURES.md, "State"). A
# replay runs event time thousands of times faster than the clock, and a loaded machine
# can hold one partition's hops back by seconds: so the file is replayed in slices shorter
# than a label delay, each decided before the next is sent, which keeps every hop within the
# delay whatever the machine's load.
SLICE_DELAYS = 0.9


def _malformed(codec: RecordCodec, good: dict) -> list[tuple[bytes, str]]:
    """(payload, a word its dead-letter reason must contain), for the preset's schema."""
    fields = codec.wire_fields(good)
    src = codec.config.source
    payload = codec.encode_fields(fields)
    return [
        (b"", "empty"),
        (b"garbage that is not avro", "wire version"),
        (b"\x01" + payload[1:], "wire version 1"),
        (payload[:6], "not a valid Avro"),
        (codec.encode_fields({**fields, src.amount: -5.0}), src.amount),
        # NaN is how a missing value travels: a required amount is then missing.
        (codec.encode_fields({**fields, src.amount: float("nan")}), f"{src.amount}: missing"),
        (codec.encode_fields({**fields, src.timestamp.field: "yesterday"}), src.timestamp.field),
        (payload + b"\x00" * 40_000, "exceeds"),
    ]


def _handbook(root: Path) -> tuple[Path, Config, list[str]]:
    frame = simulator.generate(customers=80, terminals=160, days=40, seed=3)
    data = root / "tx.csv"
    frame.to_csv(data, index=False)
    return data, load(CONFIGS / "handbook.toml"), []


def _sparkov(root: Path, slice_path: Path) -> tuple[Path, Config, list[str]]:
    # The slice spans 7.6 days: labels known 1 day after their transaction (not 7) reach
    # the merchants' and categories' states within it, so the stream's label path is used.
    text = (CONFIGS / "sparkov.toml").read_text()
    config_path = root / "sparkov-1day.toml"
    config_path.write_text(text.replace("[labels]\ndelay_days = 7", "[labels]\ndelay_days = 1"))
    split = ["--train-start", "2019-01-08", "--train-days", "3", "--delay-days", "1"]
    return slice_path, load(config_path), split


@pytest.fixture(scope="module", params=["handbook", "sparkov"])
def stack(request, tmp_path_factory):
    """A broker of its own (so topics start empty), a model trained with the preset, one
    worker running the preset."""
    root = tmp_path_factory.mktemp(f"pipeline-{request.param}")
    if request.param == "handbook":
        data, config, split = _handbook(root)
    else:
        data, config, split = _sparkov(root, request.getfixturevalue("sparkov_slice"))
    models = root / "models"
    argv = ["train", "--data", str(data), "--model-dir", str(models), "--quiet"]
    assert main([*argv, "--config", str(config.path), *split]) == 0
    frame, bad = SourceReader(config).read_file(data)
    assert not bad
    env = {"AEGIS_CONFIG": str(config.path)}
    with own_broker(root) as broker, running_worker(broker, root, models, env) as worker:
        yield {
            "broker": broker,
            "worker": worker,
            "web": worker.web,
            "frame": frame,
            "file": data,
            "root": root,
            "config": config,
        }


@pytest.fixture(scope="module")
def decisions(stack):
    """Labels first (a label counts only from its known time on, so early is exact and
    takes the race between two topics away; replay's own label timing is tested in
    tests/aegis_app/ingest/test_replay.py), then malformed records, then the file through
    `aegis replay` in slices (SLICE_DELAYS)."""
    frame, config = stack["frame"], stack["config"]
    bootstrap = stack["broker"].bootstrap
    labels = file_labels(frame, config)
    label_messages = [(lb.transaction_id.encode(), lb.to_json()) for lb in labels]
    asyncio.run(produce(bootstrap, LABELS_TOPIC, label_messages))
    wait_for_count(stack["web"], "labels_in", len(labels), timeout=120)
    # ... and applied to every entity state they name (and its replicas), so that no label
    # backlog holds back a partition's transactions by more than a label delay of event time.
    engine = StreamEngine(config)
    label_hops = sum(
        label.entities.get(e) is not None for label in labels for e in engine.label_entities
    )
    wait_for_entity_states(stack["web"], label_hops, timeout=120)
    codec = RecordCodec(config)
    malformed = _malformed(codec, _first_row(stack["file"], config))
    stack["malformed"] = malformed
    bad_records = [(str(i).encode(), payload) for i, (payload, _) in enumerate(malformed)]
    asyncio.run(produce(bootstrap, TRANSACTIONS_TOPIC, bad_records))
    asyncio.run(produce(bootstrap, LABELS_TOPIC, [(b"1", BAD_LABEL)]))
    decided, hops = 0, label_hops
    others = [e for e in engine.entities if e != card_entity_of(engine)]
    for part, rows in _slices(stack["file"], frame, config, stack["root"]):
        argv = ["replay", str(part), "--broker", stack["broker"].url, "--no-labels", "--quiet"]
        assert main([*argv, "--config", str(config.path)]) == 0
        decided += len(rows)
        wait_for_count(stack["web"], "scored", decided, timeout=180)
        # The slice's transactions reach the other entities' states (and the replicas the
        # card stage reads them from) off the decision path: before the next slice.
        hops += sum(int(rows[engine.plan.entities[e].column].notna().sum()) for e in others)
        wait_for_entity_states(stack["web"], hops, timeout=180)
    expected = len(frame)
    records = read_topic(
        stack["broker"].url,
        DECISIONS_TOPIC,
        lambda recs: len({r.key for r in recs}) >= expected,
        timeout=300,
    )
    return [json.loads(r.value) for r in records]


def _slices(path: Path, frame: pd.DataFrame, config: Config, root: Path):
    """(file, frame rows) of consecutive slices of the data file, SLICE_DELAYS label delays
    of event time each, the file's own rows and text."""
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert len(raw) == len(frame)  # every row fits: the frame's rows are the file's
    width = SLICE_DELAYS * config.label_delay_days * DAY
    number = ((frame["ts"] - frame["ts"].min()) // width).to_numpy().astype(int)
    for i in sorted(set(number)):
        part = root / f"slice-{i:03d}.csv"
        rows = raw[number == i]
        rows.to_csv(part, index=False)
        yield part, frame[number == i]


def _first_row(path: Path, config: Config) -> dict:
    """The file's first row as its producer would send it (the configured columns, text)."""
    first = pd.read_csv(path, nrows=1, dtype=str).iloc[0].to_dict()
    return {column: first[column] for column in config.source.columns() if column in first}


def test_every_good_transaction_is_decided_exactly_once(stack, decisions):
    ids = Counter(d["transaction_id"] for d in decisions)
    assert set(ids) == set(stack["frame"]["transaction_id"])
    assert max(ids.values()) == 1
    config = stack["config"]
    for d in decisions:
        assert d["action"] in ("allow", "review", "block")
        assert 0.0 <= d["score"] <= 1.0
        assert d["model_version"].startswith("v")
        assert set(d["entities"]) == set(config.entities)
        assert set(d["features"]) == set(config.feature_names)
        if d["action"] != "allow":
            assert d["reasons"], d


def test_the_configured_extra_fields_travel_with_the_decision(stack, decisions):
    config = stack["config"]
    extra = {
        name
        for name, kind in config.source.fields.items()
        for name in ([f"{name}.lat", f"{name}.lon"] if kind == "latlon" else [name])
    }
    by_id = stack["frame"].set_index("transaction_id")
    for d in decisions[:50]:
        assert set(d["fields"]) == extra
        for name in extra:
            want = by_id.at[d["transaction_id"], name]
            if isinstance(want, float) and math.isnan(want):
                assert d["fields"][name] is None
            else:
                assert d["fields"][name] == want


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
    malformed = stack["malformed"]
    expected = len(malformed) + 1
    records = read_topic(
        stack["broker"].url, DEADLETTER_TOPIC, lambda recs: len(recs) >= expected, timeout=60
    )
    letters = [json.loads(r.value) for r in records]
    assert len(letters) == expected
    from_transactions = [x for x in letters if x["source_topic"] == TRANSACTIONS_TOPIC]
    reasons = sorted(x["reason"] for x in from_transactions)
    for _, word in malformed:
        assert any(word in reason for reason in reasons), (word, reasons)
    assert [x for x in letters if x["source_topic"] == LABELS_TOPIC][0]["reason"].startswith(
        "label"
    )
    assert all(x["payload_b64"] is not None for x in letters)
    assert stack["worker"].alive
    health = worker_health(stack["web"])
    assert health["counts"]["dead_letters"] == expected


def test_stream_features_equal_batch_features(stack, decisions):
    frame, config = stack["frame"], stack["config"]
    batch = compute_features(frame, config)
    batch.index = frame["transaction_id"].to_numpy()
    mismatches = feature_mismatches(decisions, batch, config.feature_names)
    health = worker_health(stack["web"])
    assert not mismatches, (len(mismatches), mismatches[:4], health)
    assert "late_beyond_label_delay" not in health["counts"], health
    share = [n for n in config.feature_names if "fraud_share" in n or "RISK" in n]
    assert share and any(batch[n].max() > 0 for n in share), "labels reached entity states"


def test_web_view_shows_entity_state(stack, decisions):
    card = stack["frame"]["card"].iloc[-1]
    body = httpx.get(f"{stack['web']}/entities/card/{card}/", timeout=10).json()
    assert body["found"] and body["events"] >= 1 and body["state_bytes"] > 0
    assert httpx.get(f"{stack['web']}/entities/card/no-such-card/", timeout=10).status_code == 404
