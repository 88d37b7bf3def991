"""A stop has a deadline: past it the process exits, whatever it was waiting for."""

from __future__ import annotations

import subprocess
import sys
import time

from aegis_app.core.settings import Settings
from aegis_app.worker.app import build
from aegis_app.worker.stopping import AegisWorker

STUCK = """
import time
from aegis_app.worker.stopping import exit_after
exit_after(0.5)
time.sleep(60)  # a shutdown that never ends
"""


def test_a_stuck_process_exits_at_the_deadline():
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", STUCK], capture_output=True, timeout=30)
    assert time.monotonic() - started < 15
    assert done.returncode == 0  # a requested stop, forced: not an error
    assert b"did not stop within" in done.stderr


def test_the_worker_app_runs_the_worker_with_the_deadline(tmp_path):
    app, _ = build(Settings.from_env(data_dir=tmp_path, kafka_broker="kafka://127.0.0.1:9"))
    assert app.conf.Worker is AegisWorker
