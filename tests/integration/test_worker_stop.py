"""A worker given SIGTERM exits within 15 s, even when the broker has gone away (before,
Faust's shutdown retried the broker without end and the worker had to be killed)."""

from __future__ import annotations

import signal
import time

import httpx
import pytest

from aegis_app.harness.embedded_broker import EmbeddedBroker, free_port
from aegis_app.harness.stack import start_worker

pytestmark = pytest.mark.integration


def _web_answers(url: str, timeout: float, worker) -> None:
    """Until the worker's web view answers at all (without a model it says 503)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert worker.alive, worker.log_tail()
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} never answered\n{worker.log_tail()}")


def test_sigterm_stops_a_worker_whose_broker_is_gone(tmp_path):
    broker = EmbeddedBroker(port=free_port(), log_path=tmp_path / "broker.log")
    worker = None
    try:
        broker.start()
        port = free_port()
        worker = start_worker(
            broker.url, tmp_path / "state", port, tmp_path / "models", tmp_path / "worker.log"
        )
        _web_answers(f"http://127.0.0.1:{port}/health/", 120, worker)
        broker.stop()
        time.sleep(2.0)  # the worker notices: its fetches and heartbeats fail
        asked = time.monotonic()
        worker.signal(signal.SIGTERM)
        while worker.alive and time.monotonic() - asked < 30:
            time.sleep(0.2)
        took = time.monotonic() - asked
        assert not worker.alive and took < 15, (took, worker.log_tail())
        assert worker.proc.returncode == 0
    finally:
        if worker is not None:
            worker.kill()
        broker.stop()
