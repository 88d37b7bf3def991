"""Start warm, end to end: `aegis backfill` writes the state of a history's first days into
a real embedded broker, a real worker starts afterwards on a fresh data dir, and the rest
of the history is replayed: every replayed transaction's features equal the batch
computation over the whole file (history included), as if the worker had seen it all."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from aegis_app.cli.commands.backfill import parse_until
from aegis_app.cli.main import main
from aegis_app.core.config import load, resolve
from aegis_app.core.settings import DECISIONS_TOPIC, LABELS_TOPIC
from aegis_app.core.source import SourceReader
from aegis_app.harness import simulator
from aegis_app.harness.stack import read_topic
from tables.engine import StreamEngine, compute_features
from tables.engine import state as packed
from tables.engine.snapshot import build_states
from tests.integration.running import own_broker, running_worker
from tests.integration.streams import (
    feature_mismatches,
    file_labels,
    produce,
    wait_for_count,
    wait_for_entity_states,
)

pytestmark = pytest.mark.integration

SPLIT = "2018-04-09"  # backfill the first 8 days, replay the last 5
SPLIT_TS = parse_until(SPLIT)
REPLAY_RATE = 400


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    root = tmp_path_factory.mktemp("backfill")
    config = load(resolve(None))  # the Handbook preset, the simulator's schema
    data, rest = root / "tx.csv", root / "rest.csv"
    generated = simulator.generate(customers=80, terminals=160, days=13, seed=6)
    generated.to_csv(data, index=False)
    generated[generated["TX_DATETIME"] >= SPLIT].to_csv(rest, index=False)
    frame, bad = SourceReader(config).read_file(data)
    assert not bad
    models = root / "models"
    train = ["train", "--data", str(data), "--model-dir", str(models), "--quiet"]
    assert main([*train, "--train-start", "2018-04-01", "--train-days", "6"]) == 0
    with own_broker(root) as broker:
        backfill = ["backfill", "--data", str(data), "--broker", broker.url, "--quiet"]
        assert main([*backfill, "--until", SPLIT]) == 0
        with running_worker(broker, root, models) as worker:
            yield {
                "broker": broker,
                "worker": worker,
                "web": worker.web,
                "frame": frame,
                "rest": rest,
                "config": config,
                "backfill": backfill,
            }


@pytest.fixture(scope="module")
def decisions(warm):
    """The replayed days' labels first (as test_pipeline.py publishes them), then their
    transactions through `aegis replay`."""
    frame, config, web = warm["frame"], warm["config"], warm["web"]
    replayed = frame[frame["ts"] >= SPLIT_TS]
    labels = file_labels(replayed, config)
    messages = [(label.transaction_id.encode(), label.to_json()) for label in labels]
    asyncio.run(produce(warm["broker"].bootstrap, LABELS_TOPIC, messages))
    wait_for_count(web, "labels_in", len(labels), timeout=60)
    takers = StreamEngine(config).label_entities
    hops = sum(label.entities.get(e) is not None for label in labels for e in takers)
    wait_for_entity_states(web, hops, timeout=60)
    argv = ["replay", str(warm["rest"]), "--broker", warm["broker"].url, "--no-labels"]
    assert main([*argv, "--rate", str(REPLAY_RATE), "--quiet"]) == 0
    expected = set(replayed["transaction_id"])
    records = read_topic(
        warm["broker"].url,
        DECISIONS_TOPIC,
        lambda recs: len({r.key for r in recs}) >= len(expected),
        timeout=120,
    )
    decided = [json.loads(r.value) for r in records]
    assert {d["transaction_id"] for d in decided} == expected
    return decided


def test_the_worker_starts_warm(warm, decisions):
    frame, config = warm["frame"], warm["config"]
    batch = compute_features(frame, config)  # the whole file: history and replayed days
    batch.index = frame["transaction_id"].to_numpy()
    mismatches = feature_mismatches(decisions, batch, config.feature_names)
    assert not mismatches, (len(mismatches), mismatches[:4])
    # The history counts: a cold worker would have seen 1 transaction in the 30-day window
    # for every card's first replayed transaction.
    counts = [d["features"]["CUSTOMER_ID_NB_TX_30DAY_WINDOW"] for d in decisions]
    assert max(counts) > 10
    risks = [n for n in config.feature_names if "RISK" in n]
    assert any(d["features"][n] > 0 for d in decisions for n in risks), "labels in the state"


def test_the_web_view_shows_the_backfilled_days(warm, decisions):
    frame, config = warm["frame"], warm["config"]
    card = frame["card"].value_counts().index[0]
    states = build_states(frame, config)["card"].states
    plan = StreamEngine(config).plan.entities["card"]
    events = packed.decode(plan, states[card]).ts
    replayed = int(((frame["card"] == card) & (frame["ts"] >= SPLIT_TS)).sum())
    assert events.min() < SPLIT_TS and len(events) > replayed
    body = httpx.get(f"{warm['web']}/entities/card/{card}/", timeout=10).json()
    assert body["found"] and body["events"] == len(events)


def test_backfill_refuses_while_a_worker_runs(warm, capsys):
    capsys.readouterr()
    assert main([*warm["backfill"], "--until", SPLIT]) == 1
    assert "running in consumer group 'aegis'" in capsys.readouterr().err
