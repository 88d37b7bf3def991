"""A live model swap under load, on the real embedded broker with a real worker process.

Transactions stream at a steady rate; mid-stream `aegis promote` makes a second version
live, later `aegis rollback` returns to the first. Every transaction must get exactly one
decision, each batch of the scorer's input partitions must switch v1 -> v2 -> v1 once (no
flapping), and the worker must switch within seconds of each announcement: far sooner
than its 30 s poll of ACTIVE, so the aegis.model-updates path is what moved it.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from itertools import groupby
from pathlib import Path

import httpx
import pytest

from aegis_app.core import files
from aegis_app.core.settings import BY_ENTITY_TOPIC, DECISIONS_TOPIC
from aegis_app.harness import simulator
from aegis_app.harness.stack import aegis_command, read_topic
from aegis_app.ingest.replay import replay
from aegis_app.kafka.model_updates import WORKER_POLL_SECONDS
from models.lifecycle import registry
from tests.integration.running import own_broker, running_worker

pytestmark = pytest.mark.integration

RATE = 150.0  # per second: a steady load the worker keeps up with
PROMOTE_AT_S = 6.0  # seconds into the stream
ROLLBACK_AT_S = 13.0  # or later: once the stream has run SWAP_TAIL_ROWS past the promotion
# From the command's exit (the announcement is acknowledged by then) to the first decision
# by the new version; the poll alone would take up to WORKER_POLL_SECONDS.
SWAP_WITHIN_S = 5.0
# Rows streamed after each command's exit: every partition sees the swap even if it lands
# late on a loaded machine (a fixed-length stream once ended before the rollback landed).
SWAP_TAIL_ROWS = int(RATE * (SWAP_WITHIN_S + 2))
MAX_TRANSACTIONS = 9000  # the frame's size: the stream ends earlier, after the rollback
V1, V2 = "v1-live", "v2-candidate"


def _register_versions(model_dir: Path) -> None:
    """Two small, different bundles: V1 active, V2 registered but not active. Quick
    detectors only (the full set takes far longer to fit, and is tested elsewhere)."""
    from aegis_app.core.config import load, resolve
    from aegis_app.core.source import SourceReader
    from models.detectors.isolation_forest import IsolationForestDetector
    from models.detectors.logistic import LogisticRegressionDetector
    from models.lifecycle.training import fit_bundle
    from tables.engine import compute_features

    config = load(resolve(None))  # the worker's: the default preset
    frame = simulator.generate(customers=80, terminals=160, days=20, seed=3)
    normalised, bad = SourceReader(config).frame(frame)
    assert not bad
    X = compute_features(normalised, config)[list(config.feature_names)].to_numpy(dtype=float)
    y = frame["TX_FRAUD"].to_numpy(dtype=int)
    times, cards = frame["TX_DATETIME"].to_numpy(), frame["CUSTOMER_ID"].to_numpy()
    window = {"start": str(frame["TX_DATETIME"].min()), "days": 20}
    for version, detectors in (
        (V1, [LogisticRegressionDetector()]),
        (V2, [LogisticRegressionDetector(), IsolationForestDetector(n_estimators=20)]),
    ):
        bundle = fit_bundle(
            X, y, version, detectors=detectors, times=times, cards=cards, config=config
        )
        registry.save(bundle, model_dir, window, activate=version == V1)


async def _command(*args: str) -> tuple[float, float, dict]:
    """Run an `aegis` command; (start, end) wall-clock times and its JSON output."""
    started = time.time()
    proc = await asyncio.create_subprocess_exec(
        *aegis_command(*args), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode(errors="replace")
    return started, time.time(), json.loads(out.decode().strip().splitlines()[-1])


class SwappedStream:
    """The frame's rows, streamed until SWAP_TAIL_ROWS have gone out after the rollback;
    `sent` counts the rows handed to the replay, `promoted_at` / `rolled_back_at` where each
    command had finished."""

    def __init__(self, frame) -> None:
        self.frame = frame
        self.sent = 0
        self.promoted_at: int | None = None
        self.rolled_back_at: int | None = None

    def rows(self):
        for row in files.iter_frame(self.frame):
            if (
                self.rolled_back_at is not None
                and self.sent >= self.rolled_back_at + SWAP_TAIL_ROWS
            ):
                return
            self.sent += 1
            yield row

    async def rows_past(self, mark: int) -> None:
        while self.sent < mark + SWAP_TAIL_ROWS:
            await asyncio.sleep(0.1)


async def _stream_with_swaps(broker_url: str, stream: SwappedStream, model_dir: Path) -> dict:
    """Replay at RATE; promote V2 and roll back at their times into the stream, each command
    followed by SWAP_TAIL_ROWS of stream."""
    common = ("--model-dir", str(model_dir), "--broker", broker_url)

    async def swaps() -> dict:
        begin = time.monotonic()
        await asyncio.sleep(PROMOTE_AT_S)
        promoted = await _command("promote", V2, *common, "--reason", "hot-swap test")
        stream.promoted_at = stream.sent
        await asyncio.sleep(max(0.0, ROLLBACK_AT_S - (time.monotonic() - begin)))
        await stream.rows_past(stream.promoted_at)
        rolled_back = await _command("rollback", *common)
        stream.rolled_back_at = stream.sent
        return {"promote": promoted, "rollback": rolled_back}

    summary, times = await asyncio.gather(
        replay(stream.rows(), broker_url, rate=RATE, label_delay_days=None, progress=False),
        swaps(),
    )
    assert stream.rolled_back_at is not None
    assert stream.sent < len(stream.frame), "the frame ran out before the rollback's tail"
    assert summary.sent == stream.sent
    return times


def _health(web: str) -> dict | None:
    try:
        return httpx.get(f"{web}/health/", timeout=5.0).json()
    except httpx.HTTPError:
        return None  # a busy worker may answer slowly: ask again


def _wait_health(web: str, check, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    health: dict | None = None
    while time.monotonic() < deadline:
        health = _health(web)
        if health is not None and check(health):
            return health
        time.sleep(0.25)
    raise TimeoutError(f"health never satisfied the check: {health}")


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def test_hot_swap_under_load_loses_and_repeats_nothing(tmp_path):
    model_dir = tmp_path / "models"
    _register_versions(model_dir)
    frame = simulator.generate(customers=200, terminals=400, days=30, seed=7)
    stream = SwappedStream(frame.head(MAX_TRANSACTIONS))
    assert len(stream.frame) == MAX_TRANSACTIONS

    with (
        own_broker(tmp_path) as broker,
        running_worker(broker, tmp_path, model_dir) as worker,
    ):
        web = worker.web
        health = _wait_health(
            web, lambda h: h["model"]["updates_listener"] == "listening", timeout=30
        )
        assert health["model_version"] == V1

        times = asyncio.run(_stream_with_swaps(broker.url, stream, model_dir))
        transactions = stream.sent
        expected = set(stream.frame["TRANSACTION_ID"].head(transactions).astype(str))
        assert len(expected) == transactions  # ids travel as text
        assert times["promote"][2]["announced"] and times["rollback"][2]["announced"]
        assert times["rollback"][2]["version"] == V1  # the default target: the previous one

        # Drained: every transaction scored once, nothing waiting.
        health = _wait_health(
            web, lambda h: h["counts"].get("scored", 0) >= transactions, timeout=60
        )
        time.sleep(1.0)  # a repeated transaction would be counted by now
        health = _wait_health(web, lambda h: True, timeout=30)

        # Read until every transaction is there (a duplicate also shows in `scored`).
        def all_there(records: list) -> bool:
            return len(records) >= transactions

        decisions = read_topic(broker.url, DECISIONS_TOPIC, all_there, timeout=60)
        inputs = read_topic(broker.url, BY_ENTITY_TOPIC, all_there, timeout=60)
        assert worker.alive, worker.log_tail()

    # Exactly one decision per transaction: none lost, none scored twice.
    by_id: dict[str, dict] = {}
    for record in decisions:
        decision = json.loads(record.value)
        assert decision["transaction_id"] not in by_id, f"scored twice: {decision}"
        by_id[decision["transaction_id"]] = decision
    assert set(by_id) == expected, f"lost: {sorted(expected - set(by_id))[:20]}"
    assert health["counts"]["scored"] == transactions
    assert health["scoring_queue"] == 0

    # Both versions decided; the worker swapped twice, both times on the announcement.
    versions = {d["model_version"] for d in by_id.values()}
    assert versions == {V1, V2}
    counts = health["counts"]
    assert counts.get("model_swaps") == 2 and counts.get("model_swaps_on_announcement") == 2
    assert counts.get("model_announcements", 0) >= 2 and not counts.get("model_refusals")
    assert health["model_version"] == V1
    assert health["model"]["last_swap"]["from"] == V2 and health["model"]["last_swap"]["to"] == V1

    # In the scorer's input order, per partition, the version changes v1 -> v2 -> v1 once.
    # (The default preset has two entities: each transaction hops once, card -> merchant.)
    position: dict[str, tuple[int, int]] = {}
    for record in inputs:
        message = json.loads(record.value)
        if message.get("kind") == "tx":
            position[message["record"]["transaction_id"]] = (record.partition, record.offset)
    assert set(position) == expected
    partitions = sorted({p for p, _ in position.values()})
    assert len(partitions) > 1
    for partition in partitions:
        ids = sorted((o, i) for i, (p, o) in position.items() if p == partition)
        sequence = [version for version, _ in groupby(by_id[i]["model_version"] for _, i in ids)]
        assert sequence == [V1, V2, V1], f"partition {partition}: {sequence}"

    # Each swap within seconds of its announcement (the poll would take up to 30 s).
    assert SWAP_WITHIN_S < WORKER_POLL_SECONDS / 3
    promote_start, promote_end, _ = times["promote"]
    rollback_start, rollback_end, _ = times["rollback"]
    first_v2 = min(_epoch(d["decided_at"]) for d in by_id.values() if d["model_version"] == V2)
    last_v2 = max(_epoch(d["decided_at"]) for d in by_id.values() if d["model_version"] == V2)
    back_to_v1 = min(
        _epoch(d["decided_at"])
        for d in by_id.values()
        if d["model_version"] == V1 and _epoch(d["decided_at"]) > first_v2
    )
    assert promote_start <= first_v2 < promote_end + SWAP_WITHIN_S, (promote_end, first_v2)
    assert rollback_start <= back_to_v1 < rollback_end + SWAP_WITHIN_S, (rollback_end, back_to_v1)
    assert last_v2 <= back_to_v1
    log = (tmp_path / "worker.log").read_text(errors="replace")
    assert f"model swap {V1} -> {V2}" in log and f"model swap {V2} -> {V1}" in log
