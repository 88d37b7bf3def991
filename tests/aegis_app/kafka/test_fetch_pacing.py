"""Fetch pacing: a paced consumer's fetches to one broker are spaced, other brokers are not
held, and no other consumer in the process is touched."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.consumer.fetcher import Fetcher

from aegis_app.kafka.admin import ensure_topics
from aegis_app.kafka.fetch_pacing import FetchPacer, PacedConsumer, pace_fetches


def _recording_send(starts: list):
    async def send(assignment, node_id, request) -> bool:
        starts.append((node_id, time.monotonic()))
        return True

    return send


def test_fetches_to_one_broker_are_spaced_and_other_brokers_are_not_held():
    starts: list = []
    fetch = FetchPacer(_recording_send(starts), 200)

    async def scenario() -> None:
        assert await fetch(None, 1, None)  # the first fetch goes at once
        await asyncio.gather(fetch(None, 1, None), fetch(None, 2, None))

    asyncio.run(scenario())
    (first, t0), (other, t_other), (again, t_again) = sorted(starts, key=lambda s: s[1])
    assert (first, other, again) == (1, 2, 1)
    assert t_again - t0 >= 0.19  # the same broker waited out the interval
    assert t_other < t_again  # another broker's fetch did not wait behind it
    assert fetch.sent == 3


def test_zero_interval_sends_at_once():
    starts: list = []
    fetch = FetchPacer(_recording_send(starts), 0)

    async def scenario() -> None:
        for _ in range(3):
            await fetch(None, 1, None)

    began = time.monotonic()
    asyncio.run(scenario())
    assert len(starts) == 3 and time.monotonic() - began < 0.1


def test_a_fetch_cancelled_during_its_pause_ends_as_aiokafka_expects():
    # aiokafka's Fetcher.close() cancels the fetch tasks and awaits them: a cancelled fetch
    # must return False (as the original does), not raise CancelledError into close().
    starts: list = []
    fetch = FetchPacer(_recording_send(starts), 10_000)

    async def scenario() -> object:
        await fetch(None, 1, None)
        paused = asyncio.ensure_future(fetch(None, 1, None))
        await asyncio.sleep(0.05)
        paused.cancel()
        return await paused

    assert asyncio.run(scenario()) is False
    assert len(starts) == 1  # the cancelled fetch was never sent


def test_a_negative_interval_is_refused_with_its_value():
    with pytest.raises(ValueError, match="-5"):
        FetchPacer(_recording_send([]), -5)


def _fake_consumer() -> SimpleNamespace:
    starts: list = []
    fetcher = SimpleNamespace(_proc_fetch_request=_recording_send(starts))
    return SimpleNamespace(_fetcher=fetcher, starts=starts)


def test_pacing_one_consumer_leaves_the_others_and_aiokafka_alone():
    paced, other = _fake_consumer(), _fake_consumer()
    original = other._fetcher._proc_fetch_request
    pacer = pace_fetches(paced, 100)
    assert paced._fetcher._proc_fetch_request is pacer
    assert other._fetcher._proc_fetch_request is original
    # aiokafka's class keeps its own method: only that one Fetcher instance was changed
    assert Fetcher._proc_fetch_request.__module__ == "aiokafka.consumer.fetcher"
    with pytest.raises(RuntimeError, match="paced already"):
        pace_fetches(paced, 100)
    with pytest.raises(RuntimeError, match="started consumer"):
        pace_fetches(SimpleNamespace(_fetcher=None), 100)


def test_a_paced_consumer_fetches_less_often_on_the_real_broker(broker):
    """Two consumers tail an empty topic with 10 ms fetch waits: one paced at 250 ms, one
    not (interval 0, counted the same way); a plain consumer beside them is untouched."""
    topic = "pacing-real-broker"
    ensure_topics(broker.bootstrap, [topic], 1)

    async def tail(consumer: AIOKafkaConsumer, seconds: float) -> None:
        await consumer.start()
        consumer.assign([TopicPartition(topic, 0)])
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await consumer.getmany(timeout_ms=100)

    async def scenario() -> tuple[int, int, AIOKafkaConsumer]:
        options = {"bootstrap_servers": broker.bootstrap, "fetch_max_wait_ms": 10}
        paced = PacedConsumer(fetch_interval_ms=250, **options)
        unpaced = PacedConsumer(fetch_interval_ms=0, **options)
        plain = AIOKafkaConsumer(**options)
        try:
            await asyncio.gather(tail(paced, 1.5), tail(unpaced, 1.5), tail(plain, 0.2))
            assert "_proc_fetch_request" not in vars(plain._fetcher)
            return paced.fetch_pacer.sent, unpaced.fetch_pacer.sent, plain
        finally:
            for consumer in (paced, unpaced, plain):
                await consumer.stop()

    paced_sent, unpaced_sent, _ = asyncio.run(scenario())
    assert 2 <= paced_sent <= 8  # ~1.5 s / 250 ms
    assert unpaced_sent > 2 * paced_sent
