"""Whole fetches handed to a batch task, past Faust's per-message stream layers.

Why: Faust hands each fetched message to its stream on its own (the fetch loop awaits one
delivery per message, racing it against flow control with four new tasks; the channel
decodes it into an Event; the stream tracks, yields and acknowledges it). That is
~70-100 µs per message on this project's machine (``scripts/faust_floor.py``), more than
all of Aegis's own work per transaction once its features and models are compiled. The
hot-path topics (transactions in, the by-entity hop) are therefore delivered in batches:

- :class:`BatchDeliveryConsumer` (a mixin for Aegis's Faust consumer) takes every message
  of a batch topic out of Faust's fetch loop (``Consumer.getmany``) and appends it to the
  topic's :class:`Inbox`, keeping Faust's read-offset bookkeeping for it (duplicates after
  a seek dropped, offset gaps recorded so commits move past them);
- a task of the app takes a whole inbox at a time (:meth:`Inbox.take`), processes it and
  acknowledges each message through the consumer (:meth:`Inbox.done`), so Faust's offset
  commits, its wait for in-flight messages during a rebalance and its graceful stop work
  exactly as for a stream.

Rebalances: the inbox is one of the queues Faust's flow control clears when partitions are
revoked (``FlowControlEvent.manage_queue``), and Faust then seeks every partition back to
its committed offset, so whatever was waiting is read again; a message is tracked (Faust
waits for it) only once a task has taken it. Messages of an older consumer generation, or
taken while flow control is suspended, are skipped unacknowledged, as Faust's stream does.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Iterable
from typing import Any


class Inbox:
    """The fetched messages of some topics, in fetch order, for one batch task."""

    def __init__(self, app: Any, topics: Iterable[str], max_batch: int, max_buffered: int) -> None:
        if max_batch < 1 or max_buffered < max_batch:
            raise ValueError(f"need 1 <= max_batch <= max_buffered: {max_batch}, {max_buffered}")
        self.app = app
        self.topics = frozenset(topics)
        self.max_batch = max_batch
        self.max_buffered = max_buffered
        self._messages: deque = deque()
        self._arrived = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self.taken = 0  # messages handed to the task, for /health/ and tests
        self.skipped = 0  # stale messages skipped (older generation, flow suspended)
        app.flow_control.manage_queue(self)  # cleared when partitions are revoked

    def __len__(self) -> int:
        return len(self._messages)

    def put(self, message: Any) -> None:
        """Called by the consumer's fetch loop (never blocks; see :meth:`room`)."""
        self._messages.append(message)
        self._arrived.set()
        if len(self._messages) >= self.max_buffered:
            self._room.clear()

    async def room(self) -> None:
        """Wait until the task has taken enough that another fetch may come in."""
        await self._room.wait()

    def clear(self) -> None:
        """Drop what waits (a rebalance): the consumer seeks back, it is read again."""
        self._messages.clear()
        self._arrived.clear()
        self._room.set()

    async def take(self) -> list[Any]:
        """The next batch (at least one message, at most ``max_batch``), each tracked by
        the consumer until :meth:`done` acknowledges it."""
        consumer = self.app.consumer
        while True:
            while not self._messages:
                self._arrived.clear()
                await self._arrived.wait()
            n = min(len(self._messages), self.max_batch)
            popleft = self._messages.popleft
            batch = [popleft() for _ in range(n)]
            if len(self._messages) < self.max_buffered:
                self._room.set()
            generation, flowing = self.app.consumer_generation_id, self.app.flow_control.is_active()
            taken = []
            for message in batch:
                if not flowing or message.generation_id != generation:
                    self.skipped += 1  # read again after the rebalance's seek
                    continue
                message.tracked = True
                consumer.track_message(message)
                taken.append(message)
            if taken:
                self.taken += len(taken)
                return taken

    def done(self, messages: Iterable[Any]) -> None:
        """Acknowledge processed messages: their offsets may now be committed."""
        ack = self.app.consumer.ack
        for message in messages:
            ack(message)


class BatchDeliveryConsumer:
    """Mixin for Aegis's Faust ``Consumer``: messages of a topic with an :class:`Inbox`
    (the app's ``batch_inboxes``, topic name -> inbox) go there, not to Faust's streams."""

    app: Any

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[Any, Any]]:
        inboxes: dict[str, Inbox] = self.app.batch_inboxes
        if not inboxes:
            async for item in super().getmany(timeout):  # type: ignore[misc]
                yield item
            return
        read_offsets = self._read_offset  # type: ignore[attr-defined]
        filled: set[Inbox] = set()
        async for tp, message in super().getmany(timeout):  # type: ignore[misc]
            inbox = inboxes.get(tp.topic)
            if inbox is None:
                yield tp, message
                continue
            # Faust's fetch loop does this for the messages it delivers (Consumer.
            # _drain_messages): drop what a seek made a duplicate; record skipped offsets
            # (a gap) so the commit can move past them.
            offset, last = message.offset, read_offsets.get(tp)
            if last is not None and offset < last:
                continue
            if last and offset - last > 1:
                await self._add_gap(tp, last + 1, offset)  # type: ignore[attr-defined]
            read_offsets[tp] = offset
            inbox.put(message)
            filled.add(inbox)
        for inbox in filled:
            await inbox.room()  # back-pressure: no next fetch while the task is behind
