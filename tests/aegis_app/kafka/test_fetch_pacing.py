"""Fetch pacing: a consumer's fetches to one broker are spaced, other brokers are not held."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

from aiokafka.consumer.fetcher import Fetcher

from aegis_app.kafka import fetch_pacing


def _recording_fetch(starts: list):
    async def _proc_fetch_request(self, assignment, node_id, request):
        starts.append((node_id, time.monotonic()))
        return True

    return _proc_fetch_request


def test_fetches_to_one_broker_are_spaced_and_other_brokers_are_not_held(monkeypatch):
    starts: list = []
    monkeypatch.setattr(Fetcher, "_proc_fetch_request", _recording_fetch(starts))
    fetch_pacing.install(200)
    fetcher = SimpleNamespace()  # stands in for one consumer's Fetcher

    async def scenario() -> None:
        fetch = Fetcher._proc_fetch_request
        assert await fetch(fetcher, None, 1, None)  # the first fetch goes at once
        await asyncio.gather(fetch(fetcher, None, 1, None), fetch(fetcher, None, 2, None))

    asyncio.run(scenario())
    (first, t0), (other, t_other), (again, t_again) = sorted(starts, key=lambda s: s[1])
    assert (first, other, again) == (1, 2, 1)
    assert t_again - t0 >= 0.19  # the same broker waited out the interval
    assert t_other < t_again  # another broker's fetch did not wait behind it


def test_zero_removes_the_pacing(monkeypatch):
    starts: list = []
    recording = _recording_fetch(starts)
    monkeypatch.setattr(Fetcher, "_proc_fetch_request", recording)
    fetch_pacing.install(50)
    assert Fetcher._proc_fetch_request is not recording
    fetch_pacing.install(0)
    assert Fetcher._proc_fetch_request is recording


def test_a_fetch_cancelled_during_its_pause_ends_as_aiokafka_expects(monkeypatch):
    # aiokafka's Fetcher.close() cancels the fetch tasks and awaits them: a cancelled fetch
    # must return False (as the original does), not raise CancelledError into close().
    starts: list = []
    monkeypatch.setattr(Fetcher, "_proc_fetch_request", _recording_fetch(starts))
    fetch_pacing.install(10_000)
    fetcher = SimpleNamespace()

    async def scenario() -> object:
        fetch = Fetcher._proc_fetch_request
        await fetch(fetcher, None, 1, None)
        paused = asyncio.ensure_future(fetch(fetcher, None, 1, None))
        await asyncio.sleep(0.05)
        paused.cancel()
        return await paused

    assert asyncio.run(scenario()) is False
    assert len(starts) == 1  # the cancelled fetch was never sent
