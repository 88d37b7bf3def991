"""`aegis bench` end to end: a fresh embedded broker, a real worker, every transaction
decided once, the summary's fields, and nothing of the run left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aegis_app.harness import chaos

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("bench-model")
    chaos.ensure_model(model_dir, customers=400, days=35)  # small: quick to train
    return model_dir


def test_bench_decides_every_transaction_once_and_cleans_up(tmp_path, model_dir):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    command = [sys.executable, "-m", "aegis_app.cli.main", "bench", "--transactions", "600"]
    command += ["--workers", "1", "--rate", "300", "--model-dir", str(model_dir), "--json"]
    command += ["--latencies-out", str(tmp_path / "latencies.csv")]
    done = subprocess.run(
        command,
        cwd=ROOT,
        env={**os.environ, "TMPDIR": str(scratch)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["transactions"] == summary["decided"] == 600
    assert summary["duplicate_decisions"] == 0
    assert summary["rate_offered"] == 300
    assert 0 < summary["latency_ms"]["p50"] <= summary["latency_ms"]["p99"]
    assert summary["worker_cpu_ms_per_tx"] > 0
    assert summary["events_per_score_batch"] >= 1
    # Every transaction's latency, as the summary's percentiles read them.
    rows = (tmp_path / "latencies.csv").read_text().splitlines()
    assert rows[0] == "transaction_id,ingested_ms,decided_ms,latency_ms" and len(rows) == 601
    latencies = sorted(int(row.split(",")[3]) for row in rows[1:])
    assert latencies[-1] == summary["latency_ms"]["max"]
    first = min(int(row.split(",")[2]) for row in rows[1:])
    assert summary["first_decision_ms"] == first - min(int(r.split(",")[1]) for r in rows[1:])
    assert all(int(row.split(",")[2]) - int(row.split(",")[1]) >= 0 for row in rows[1:])
    # The run's broker log, worker state and logs are removed after a good run.
    assert not list(scratch.glob("aegis-bench-*"))
