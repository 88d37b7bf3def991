"""Model-update announcements: their encoding, every listener hearing every one (no
consumer group), the scorer swapping between batches when woken, and the promote /
rollback / models commands on a temporary registry."""

from __future__ import annotations

import asyncio
import json
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from aegis_app.cli.main import main
from aegis_app.core.config import load, resolve
from aegis_app.core.settings import MODEL_UPDATES_TOPIC
from aegis_app.harness.embedded_broker import free_port
from aegis_app.harness.stack import read_topic
from aegis_app.kafka import model_updates
from aegis_app.kafka.admin import ensure_topics
from aegis_app.kafka.model_updates import (
    ModelUpdatesListener,
    announce_async,
    decode_announcement,
    encode_announcement,
)
from models.lifecycle import registry

# The default preset's features: what the worker's models read.
ALL_FEATURES = load(resolve(None)).feature_names

# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def tiny_bundle():
    """A one-detector bundle on synthetic features: enough to save, load and score."""
    from models.detectors.logistic import LogisticRegressionDetector
    from models.lifecycle.training import fit_bundle

    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, len(ALL_FEATURES)))
    y = (rng.random(600) < 0.1).astype(int)
    X[y == 1, 0] += 3.0
    return fit_bundle(X, y, "vtest", detectors=[LogisticRegressionDetector()])


def _registry(bundle, model_dir: Path, versions: list[str], active: str | None) -> Path:
    """Save `versions` of the bundle in `model_dir` (none active unless `active`)."""
    window = {"start": "2018-07-25", "days": 7}
    for version in versions:
        bundle.version = version
        registry.save(bundle, model_dir, window, activate=version == active)
    bundle.version = "vtest"
    return model_dir


@pytest.fixture
def model_dir(tiny_bundle, tmp_path) -> Path:
    """v1 active, v2 registered but not activated."""
    return _registry(tiny_bundle, tmp_path / "models", ["v1", "v2"], active="v1")


@pytest.fixture
def updates_topic(broker) -> str:
    ensure_topics(broker.bootstrap, [MODEL_UPDATES_TOPIC], 4)
    return MODEL_UPDATES_TOPIC


def _announcements(broker_url: str, after: int = 0) -> list[dict]:
    """Every announcement on the topic beyond the first `after` records."""
    records = read_topic(broker_url, MODEL_UPDATES_TOPIC, lambda r: len(r) > after, timeout=10)
    return [json.loads(r.value) for r in records[after:]]


def _count_announcements(broker_url: str) -> int:
    return len(read_topic(broker_url, MODEL_UPDATES_TOPIC, lambda r: False, timeout=2))


# --------------------------------------------------------------------------- encoding


def test_announcement_round_trip_carries_the_registry(tmp_path):
    entry = {"at": "2026-01-01T00:00:00+00:00", "version": "v2", "previous": "v1", "reason": "x"}
    value = encode_announcement(entry, tmp_path / "models")
    decoded = decode_announcement(value)
    assert decoded == {**entry, "model_dir": str((tmp_path / "models").resolve())}


@pytest.mark.parametrize("value", [b"", b"{oops", b"[1, 2]", b'{"version": 3}', None])
def test_a_record_that_is_no_announcement_decodes_to_none(value):
    assert decode_announcement(value) is None


def test_an_announcement_needs_a_version():
    with pytest.raises(ValueError, match="version"):
        encode_announcement({"previous": "v1"})


# --------------------------------------------------------------------------- listener


def test_every_listener_hears_every_announcement(broker, updates_topic):
    """Two listeners (two workers) both receive each announcement: no consumer group."""

    async def scenario():
        heard: list[list] = [[], []]
        listeners = [ModelUpdatesListener(broker.url, heard[i].append) for i in range(2)]
        tasks = [asyncio.create_task(listener.run()) for listener in listeners]
        try:
            for listener in listeners:
                await asyncio.wait_for(listener.ready.wait(), 20)
            for version in ("v2", "v1"):
                await announce_async(broker.url, {"version": version, "previous": "x"})
            deadline = asyncio.get_running_loop().time() + 15
            while any(len([h for h in got if h]) < 2 for got in heard):
                assert asyncio.get_running_loop().time() < deadline, heard
                await asyncio.sleep(0.1)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return heard, listeners

    heard, listeners = asyncio.run(scenario())
    for got, listener in zip(heard, listeners):
        assert got[0] is None  # positioned at the end: "check ACTIVE now"
        # The end may be the start of the last record batch on Tansu, so an older
        # announcement can come again; what must hold is that both new ones arrive, in order.
        versions = [a["version"] for a in got[1:]]
        assert versions[-2:] == ["v2", "v1"], versions
        assert listener.received >= 2


def test_listener_survives_an_unreachable_broker():
    """No broker: the listener keeps retrying (the worker's ACTIVE poll still works)."""

    async def scenario():
        listener = ModelUpdatesListener(f"kafka://127.0.0.1:{free_port()}", print, retry_s=0.1)
        task = asyncio.create_task(listener.run())
        await asyncio.sleep(1.5)
        alive = not task.done()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return alive, listener

    alive, listener = asyncio.run(scenario())
    assert alive and not listener.ready.is_set()
    assert listener.status.startswith("retrying")


# --------------------------------------------------------------------------- scorer


class _Stream:
    def __init__(self) -> None:
        self.acked: list[int] = []  # what the scorer acknowledged


def _tx(i: int) -> dict:
    """A normalised record (RecordCodec.decode's shape) of the default preset."""
    return {
        "transaction_id": str(i),
        "card": "1",
        "merchant": "2",
        "amount": 10.0,
        "ts": 1526810400,  # 2018-05-20 10:00:00 UTC
    }


def test_an_announcement_swaps_the_scorer_between_batches(model_dir, monkeypatch):
    """The scorer loads v1; ACTIVE moves to v2 (no poll due); the announcement wakes it and
    the next batch is scored by v2. Every transaction gets exactly one decision."""
    from aegis_app.core.messages import ScoreRequest
    from agents import scoring
    from agents.counters import WorkerCounters
    from models.decisions.policy import Rules

    counters = WorkerCounters()
    counts = counters.counts

    sent: list[dict] = []

    async def send_many(app, topic: str, records: list[tuple[bytes, bytes]]) -> None:
        if topic == scoring.DECISIONS_TOPIC:
            sent.extend(json.loads(value) for _, value in records)

    fake_producer = SimpleNamespace(send_many=send_many, dumps=scoring.raw_producer.dumps)
    monkeypatch.setattr(scoring, "raw_producer", fake_producer)
    features = dict.fromkeys(ALL_FEATURES, 0.0)

    async def scenario():
        scorer = scoring.MicroBatchScorer(
            SimpleNamespace(),  # the Faust app: only the (faked) producer would use it
            counters,
            model_dir,
            batch_size=8,
            max_wait_s=0.01,
            rules=Rules(),
            poll_seconds=3600,
        )
        stream = _Stream()
        task = asyncio.create_task(scorer.run())
        try:
            while scorer.bundle is None:
                await asyncio.sleep(0.05)
            for i in range(20):
                await scorer.submit(
                    ScoreRequest(_tx(i), features, None), partial(stream.acked.append, i)
                )
            while len(stream.acked) < 20:
                await asyncio.sleep(0.05)
            entry = registry.activate_version(model_dir, "v2", reason="test")
            await asyncio.sleep(1.0)  # the poll is not due: still v1
            assert scorer.bundle.version == "v1"
            scorer.wake(entry)
            for i in range(20, 40):
                await scorer.submit(
                    ScoreRequest(_tx(i), features, None), partial(stream.acked.append, i)
                )
            while len(stream.acked) < 40:
                await asyncio.sleep(0.05)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        return scorer, stream

    scorer, stream = asyncio.run(scenario())
    assert sorted(stream.acked) == list(range(40))
    # One decision per transaction (alerts go to their own topic).
    assert sorted(int(d["transaction_id"]) for d in sent) == list(range(40))
    decisions = {int(d["transaction_id"]): d["model_version"] for d in sent}
    assert set(decisions) == set(range(40))
    assert {decisions[i] for i in range(20)} == {"v1"}
    assert {decisions[i] for i in range(20, 40)} == {"v2"}
    assert scorer.last_swap["from"] == "v1" and scorer.last_swap["to"] == "v2"
    assert scorer.last_swap["trigger"] == "announcement"
    assert counts["model_swaps_on_announcement"] == 1
    assert scorer.model_status()["version"] == "v2"


# --------------------------------------------------------------------------- commands


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_promote_then_rollback_activate_and_announce(model_dir, broker, updates_topic, capsys):
    before = _count_announcements(broker.url)
    args = ("--model-dir", str(model_dir), "--broker", broker.url)

    code, out, err = _run(capsys, "promote", "v2", *args, "--reason", "better AP")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["version"] == "v2" and summary["previous"] == "v1"
    assert summary["announced"] is True
    assert registry.active_version(model_dir) == "v2"

    code, out, err = _run(capsys, "rollback", *args)
    assert code == 0, err
    assert json.loads(out)["version"] == "v1"
    assert registry.active_version(model_dir) == "v1"

    history = registry.activation_history(model_dir)
    assert [(e["version"], e["previous"], e["reason"]) for e in history] == [
        ("v1", None, "trained"),
        ("v2", "v1", "better AP"),
        ("v1", "v2", "rollback"),
    ]
    announced = _announcements(broker.url, after=before)
    assert [(a["version"], a["previous"]) for a in announced] == [("v2", "v1"), ("v1", "v2")]
    assert announced[0]["model_dir"] == str(model_dir.resolve())
    assert announced[0]["reason"] == "better AP"


def test_rollback_without_a_previous_version_fails_clearly(model_dir, capsys):
    code, out, err = _run(capsys, "rollback", "--model-dir", str(model_dir), "--broker", "x:1")
    assert code == 1
    assert "no version to roll back to" in err and out == ""
    assert registry.active_version(model_dir) == "v1"


def test_promote_refuses_an_unknown_version_and_keeps_the_active(model_dir, capsys):
    code, _, err = _run(capsys, "promote", "v9", "--model-dir", str(model_dir), "--broker", "x:1")
    assert code == 1 and "v9" in err and "v1 stays active" in err
    assert registry.active_version(model_dir) == "v1"
    assert len(registry.activation_history(model_dir)) == 1


def test_promote_without_a_broker_still_activates(model_dir, capsys):
    """ACTIVE is the truth: no broker only means workers switch on their next poll."""
    dead = f"kafka://127.0.0.1:{free_port()}"
    code, out, err = _run(capsys, "promote", "v2", "--model-dir", str(model_dir), "--broker", dead)
    assert code == 0
    assert json.loads(out)["announced"] is False
    assert "warning" in err and "next poll" in err
    assert registry.active_version(model_dir) == "v2"


def test_rollback_to_a_named_version(tiny_bundle, tmp_path, capsys):
    model_dir = _registry(tiny_bundle, tmp_path / "m", ["v1", "v2", "v3"], active="v1")
    dead = f"kafka://127.0.0.1:{free_port()}"
    for version in ("v2", "v3"):
        assert main(["promote", version, "--model-dir", str(model_dir), "--broker", dead]) == 0
    assert registry.rollback_target(model_dir) == "v2"
    capsys.readouterr()
    code, out, _ = _run(
        capsys, "rollback", "--to", "v1", "--model-dir", str(model_dir), "--broker", dead
    )
    assert code == 0 and json.loads(out)["version"] == "v1"
    assert registry.active_version(model_dir) == "v1"


def test_models_lists_versions_active_and_history(model_dir, capsys):
    dead = f"kafka://127.0.0.1:{free_port()}"
    assert main(["promote", "v2", "--model-dir", str(model_dir), "--broker", dead]) == 0
    capsys.readouterr()
    code, out, _ = _run(capsys, "models", "--model-dir", str(model_dir), "--json")
    assert code == 0
    listing = json.loads(out)
    assert listing["active"] == "v2" and listing["rollback_target"] == "v1"
    assert [(v["version"], v["active"]) for v in listing["versions"]] == [
        ("v1", False),
        ("v2", True),
    ]
    assert [e["version"] for e in listing["history"]] == ["v1", "v2"]

    code, out, _ = _run(capsys, "models", "--model-dir", str(model_dir))
    assert code == 0
    assert "active v2" in out and "* v2" in out and "v1 -> v2" in out
    assert "rollback goes to v1" in out


def test_workers_poll_active_every_thirty_seconds_as_the_fallback(tmp_path):
    from aegis_app.core.settings import Settings
    from aegis_app.worker.app import build

    _, pipeline = build(Settings.from_env(data_dir=tmp_path / "state"))
    scorer = pipeline.scorer
    assert scorer.poll_seconds == model_updates.WORKER_POLL_SECONDS == 30.0
    assert scorer.updates_listener.on_wake == scorer.wake
