"""Deferred sends: records gathered and sent together, each callback run once they are
handed to the producer, and an acknowledgement that waits for two things."""

from __future__ import annotations

import asyncio

from agents import deferred_sends
from agents.deferred_sends import DeferredSends, after_calls


def test_records_wait_for_the_next_send_then_their_callbacks_run(monkeypatch):
    sent: list = []

    async def send_many(app, topic, records, partition=None):
        sent.append((topic, list(records)))
        return []

    monkeypatch.setattr(deferred_sends.raw_producer, "send_many", send_many)
    done: list[str] = []
    sends = DeferredSends.to_topic(None, "aegis.by-entity", interval_s=0.01, max_records=3)

    async def scenario() -> None:
        sends.add([(b"m1", b"a")], [lambda: done.append("first")])
        sends.add([(b"m2", b"b")], [lambda: done.append("second")])
        assert sent == [] and done == [] and len(sends) == 2 and not sends.full
        task = asyncio.create_task(sends.run())
        for _ in range(100):
            if done:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())
    assert sent == [("aegis.by-entity", [(b"m1", b"a"), (b"m2", b"b")])]  # one send, in order
    assert done == ["first", "second"] and len(sends) == 0 and sends.sends == 1
    sends.add([(b"k", b"v")] * 3, [])
    assert sends.full


def test_an_acknowledgement_waits_for_its_second_call():
    acked: list[int] = []
    ack = after_calls(2, lambda: acked.append(1))
    ack()
    assert acked == []
    ack()
    assert acked == [1]
    ack()
    assert acked == [1]  # once only


def test_what_waits_is_sent_when_the_task_stops(monkeypatch):
    sent: list = []

    async def send_many(app, topic, records, partition=None):
        sent.extend(records)
        return []

    monkeypatch.setattr(deferred_sends.raw_producer, "send_many", send_many)
    sends = DeferredSends.to_topic(None, "aegis.by-entity", interval_s=60, max_records=10)
    done: list[int] = []

    async def scenario() -> None:
        task = asyncio.create_task(sends.run())
        await asyncio.sleep(0.01)
        sends.add([(b"k", b"v")], [lambda: done.append(1)])
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())
    assert sent == [(b"k", b"v")] and done == [1]
