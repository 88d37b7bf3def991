"""Records off the decision path, gathered for a while and sent together.

Why: the card stage's hops to the other entities' states (aegis.by-entity), and its card
states' changelog records, are not on the decision path; sent with each fetch's batch, at
1,000 tx/s with short fetch waits the hops made ~100 small record batches a second per
partition, and as many entity-stage batches and changelog writes after them, each with its
fixed cost in the worker and in the broker.
Gathered for `interval_s` (100 ms: a fraction of the replicas' freshness budget), they are
a few large batches.

Nothing is lost by waiting: an input message is acknowledged (its offset may be committed)
only once its decision is published *and* its hops and changelog records are handed to the
producer (the callbacks each :meth:`DeferredSends.add` takes run after the send), and a
crash before re-delivers the message, whose hops and state are then sent again (a state
takes a transaction id once; a redelivered one's state is written and sent again).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aegis_app.kafka import raw_producer

Callback = Callable[[], object]


class DeferredSends:
    """Records sent every `interval_s` (or once `max_records` wait) by `send`, a coroutine
    function taking them all in order (:meth:`to_topic`: keyed records for one topic)."""

    def __init__(
        self,
        send: Callable[[list[Any]], Awaitable[object]],
        interval_s: float,
        max_records: int,
    ) -> None:
        self.send = send
        self.interval_s = interval_s
        self.max_records = max_records
        self._records: list[Any] = []
        self._after: list[Callback] = []
        self.sends = 0  # flushes that sent something, for /health/ and tests

    @classmethod
    def to_topic(cls, app, topic: str, interval_s: float, max_records: int) -> DeferredSends:
        """Keyed records (key bytes, value bytes) for `topic`, partitioned by their keys."""

        async def send(records: list[tuple[bytes, bytes]]) -> None:
            await raw_producer.send_many(app, topic, records)

        return cls(send, interval_s, max_records)

    def __len__(self) -> int:
        return len(self._records)

    @property
    def full(self) -> bool:
        return len(self._records) >= self.max_records

    def add(self, records: Sequence[Any], after: Sequence[Callback]) -> None:
        """Keep `records` for the next send; call each of `after` once they are sent."""
        self._records.extend(records)
        self._after.extend(after)

    async def flush(self) -> None:
        """Send what waits (one call of `send`), then run its callbacks."""
        records, after = self._records, self._after
        if not records and not after:
            return
        self._records, self._after = [], []
        await self.send(records)
        self.sends += 1
        for callback in after:
            callback()

    async def run(self) -> None:
        """Until cancelled: send what waits every `interval_s`; on the way out, what is left
        (so a clean stop acknowledges it instead of leaving it to be decided again)."""
        try:
            while True:
                await asyncio.sleep(self.interval_s)
                await self.flush()
        finally:
            with contextlib.suppress(Exception):  # the producer may be gone already
                await self.flush()


def after_calls(calls: int, callback: Callback) -> Callback:
    """A callable that runs `callback` when it has been called `calls` times: for what is
    done only when several things are (each decision of a fetch published, its hops and
    changelog records sent)."""
    remaining = calls

    def call() -> None:
        nonlocal remaining
        remaining -= 1
        if remaining == 0:
            callback()

    return call
