"""The inbox a batch task takes whole fetches from (aegis_app/kafka/batches.py): order,
bounds, back-pressure, tracking and acknowledgement through the consumer, and what a
rebalance does to it. The consumer and flow control are stand-ins; the worker's use of it
against a real broker is tested by tests/integration (pipeline, failover, chaos)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest
from mode.utils.queues import FlowControlEvent

from aegis_app.kafka.batches import Inbox


@dataclass(eq=False)
class Message:
    offset: int
    generation_id: int = 1
    tracked: bool = False


@dataclass
class Consumer:
    tracked: list[int] = field(default_factory=list)
    acked: list[int] = field(default_factory=list)

    def track_message(self, message: Message) -> None:
        self.tracked.append(message.offset)

    def ack(self, message: Message) -> bool:
        self.acked.append(message.offset)
        return True


class App:
    def __init__(self) -> None:
        self.consumer = Consumer()
        self.consumer_generation_id = 1
        self.flow_control = FlowControlEvent()
        self.flow_control.resume()


def run(coro):
    return asyncio.run(coro)


def test_a_task_takes_what_waits_in_order_up_to_the_batch_size():
    async def scenario():
        app = App()
        inbox = Inbox(app, ["t"], max_batch=3, max_buffered=10)
        for offset in range(5):
            inbox.put(Message(offset))
        first = await inbox.take()
        second = await inbox.take()
        return app, first, second

    app, first, second = run(scenario())
    assert [m.offset for m in first] == [0, 1, 2]
    assert [m.offset for m in second] == [3, 4]
    assert app.consumer.tracked == [0, 1, 2, 3, 4]
    assert all(m.tracked for m in first + second)
    assert app.consumer.acked == []  # nothing is acknowledged before the task says so


def test_done_acknowledges_through_the_consumer():
    async def scenario():
        app = App()
        inbox = Inbox(app, ["t"], max_batch=10, max_buffered=10)
        inbox.put(Message(7))
        inbox.done(await inbox.take())
        return app

    assert run(scenario()).consumer.acked == [7]


def test_take_waits_for_a_message():
    async def scenario():
        inbox = Inbox(App(), ["t"], max_batch=10, max_buffered=10)
        waiting = asyncio.ensure_future(inbox.take())
        await asyncio.sleep(0.01)
        assert not waiting.done()
        inbox.put(Message(1))
        return await asyncio.wait_for(waiting, 1)

    assert [m.offset for m in run(scenario())] == [1]


def test_a_full_inbox_holds_the_next_fetch_until_the_task_takes():
    async def scenario():
        inbox = Inbox(App(), ["t"], max_batch=2, max_buffered=4)
        for offset in range(4):
            inbox.put(Message(offset))
        room = asyncio.ensure_future(inbox.room())
        await asyncio.sleep(0.01)
        held = not room.done()
        await inbox.take()
        await asyncio.wait_for(room, 1)
        return held

    assert run(scenario())


def test_a_rebalance_clears_what_waits_and_stale_messages_are_skipped_unacknowledged():
    async def scenario():
        app = App()
        inbox = Inbox(app, ["t"], max_batch=10, max_buffered=10)
        inbox.put(Message(1))
        app.flow_control.suspend()
        app.flow_control.clear()  # what Faust does when partitions are revoked
        assert len(inbox) == 0
        app.flow_control.resume()
        app.consumer_generation_id = 2
        inbox.put(Message(2, generation_id=1))  # fetched before the rebalance
        inbox.put(Message(3, generation_id=2))
        taken = await inbox.take()
        return app, inbox, taken

    app, inbox, taken = run(scenario())
    assert [m.offset for m in taken] == [3]
    assert inbox.skipped == 1
    assert app.consumer.tracked == [3]


def test_impossible_bounds_are_refused():
    with pytest.raises(ValueError, match="max_batch"):
        Inbox(App(), ["t"], max_batch=10, max_buffered=5)
