"""At most one fetch request per broker every `interval_ms`, for the consumers that ask for it.

Why: on the embedded Tansu broker (0.6.0, memory engine) every read of new data from a
partition costs broker CPU in proportion to the record batches the partition has ever
held (its storage lists them to find the offset; ~0.9 us per batch measured), and a
consumer tailing a busy partition reads it continually, so the broker's CPU grows as the
topic fills (scripts/tansu_fetch_cost.py, BENCHMARKS.md). Spacing the fetches bounds how
often that happens, whatever the produce rate, at the price of up to `interval_ms` more
latency per hop. Apache Kafka reads from an offset index: leave it at 0 there.

How: the pause is taken where aiokafka's Fetcher sends one fetch request to one broker
(`Fetcher._proc_fetch_request`), before the request is sent. The node counts as in flight
meanwhile, so no second fetch goes to it; a response for a position that changed during
the pause is discarded by aiokafka itself. Only the consumers that ask are paced: once a
consumer has started (its Fetcher is created by `start()`), :func:`pace_fetches` puts a
:class:`FetchPacer` in front of that one Fetcher's method, on the instance. Nothing changes
for any other consumer in the process. :class:`PacedConsumer` does this in its own
`start()` (what `aegis_app.kafka.clients.consumer(..., paced=True)` builds); Faust's
consumer thread does it for the aiokafka consumer Faust builds (aegis_app/kafka/faust_ext.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer

# aiokafka's Fetcher._proc_fetch_request(assignment, node_id, request) -> bool
SendFetch = Callable[[Any, int, Any], Awaitable[bool]]


def _check_interval(interval_ms: float) -> float:
    if not isinstance(interval_ms, int | float) or interval_ms < 0:
        raise ValueError(
            f"fetch interval must be a number of milliseconds >= 0, got {interval_ms!r}"
        )
    return float(interval_ms)


class FetchPacer:
    """One Fetcher's fetch sender, holding each fetch to a broker until `interval_ms` after
    the previous one to that broker was sent. Fetches to other brokers are not held."""

    def __init__(self, send: SendFetch, interval_ms: float) -> None:
        self._send = send
        self.interval_ms = _check_interval(interval_ms)
        self._started: dict[int, float] = {}  # node id -> when its last fetch was sent
        self.sent = 0  # fetch requests passed on to aiokafka (scripts/tansu_fetch_cost.py)

    async def __call__(self, assignment: Any, node_id: int, request: Any) -> bool:
        wait = self._started.get(node_id, float("-inf")) + self.interval_ms / 1000
        wait -= time.monotonic()
        if wait > 0:
            try:
                await asyncio.sleep(wait)
            except asyncio.CancelledError:
                # Cancelled by close() or an assignment change, as aiokafka cancels a fetch
                # in flight: the original answers that with False, and close() relies on it.
                return False
        self._started[node_id] = time.monotonic()
        self.sent += 1
        return await self._send(assignment, node_id, request)


def pace_fetches(consumer: AIOKafkaConsumer, interval_ms: float) -> FetchPacer:
    """Space this started consumer's fetches to one broker `interval_ms` apart."""
    fetcher = consumer._fetcher  # created by start(); private (aegis_app/kafka/private_names)
    if fetcher is None:
        raise RuntimeError("pace_fetches needs a started consumer: start() creates its Fetcher")
    send = fetcher._proc_fetch_request
    if isinstance(send, FetchPacer):
        raise RuntimeError("this consumer's fetches are paced already")
    pacer = FetchPacer(send, interval_ms)
    # On this one Fetcher instance: its fetch loop looks the method up on every request.
    fetcher._proc_fetch_request = pacer
    return pacer


class PacedConsumer(AIOKafkaConsumer):
    """An AIOKafkaConsumer whose fetches to one broker are `fetch_interval_ms` apart
    (0: sent as aiokafka sends them, still counted in `fetch_pacer.sent`)."""

    def __init__(self, *topics: str, fetch_interval_ms: float, **options: Any) -> None:
        self.fetch_interval_ms = _check_interval(fetch_interval_ms)
        self.fetch_pacer: FetchPacer | None = None
        super().__init__(*topics, **options)

    async def start(self) -> None:
        await super().start()
        self.fetch_pacer = pace_fetches(self, self.fetch_interval_ms)
