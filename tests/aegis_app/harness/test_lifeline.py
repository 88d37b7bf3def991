"""A child started with stop_with_parent stops when its parent is killed outright."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux prctl")

# The parent: starts `sleep 300` as a ManagedProcess that stops with it, prints its pid,
# then waits to be killed.
PARENT = """
import sys, time
from pathlib import Path
from aegis_app.harness.stack import ManagedProcess
child = ManagedProcess("sleeper", ["sleep", "300"], Path(sys.argv[1]), stop_with_parent={flag})
child.start()
print(child.proc.pid, flush=True)
time.sleep(300)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (dead, not yet reaped by init) counts as gone.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(") ", 1)[1][0] != "Z"


def _orphan_after_sigkill(tmp_path, flag: bool) -> int:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT.format(flag=flag), str(tmp_path / "child.log")],
        stdout=subprocess.PIPE,
        text=True,
    )
    child = int(parent.stdout.readline())
    assert _alive(child)
    parent.send_signal(signal.SIGKILL)
    parent.wait(timeout=10)
    return child


def test_a_child_stops_when_its_parent_is_killed(tmp_path):
    child = _orphan_after_sigkill(tmp_path, flag=True)
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child)


def test_without_it_the_child_outlives_its_parent(tmp_path):
    child = _orphan_after_sigkill(tmp_path, flag=False)
    try:
        time.sleep(1.0)
        assert _alive(child)  # what the demo's processes did before
    finally:
        os.killpg(child, signal.SIGKILL)
