"""At most one fetch request per broker every `interval_ms`, for every aiokafka consumer.

Why: on the embedded Tansu broker (0.6.0, memory engine) every read of new data from a
partition costs broker CPU in proportion to the record batches the partition has ever
held (its storage lists them to find the offset; ~0.9 us per batch measured), and a
consumer tailing a busy partition reads it continually, so the broker's CPU grows as the
topic fills (scripts/tansu_fetch_cost.py, BENCHMARKS.md). Spacing the fetches bounds how
often that happens, whatever the produce rate, at the price of up to `interval_ms` more
latency per hop. Apache Kafka reads from an offset index: leave it at 0 there.

The pause is taken inside aiokafka's `Fetcher._proc_fetch_request`, before the request is
sent. The node counts as in flight meanwhile, so no second fetch goes to it; a response
for a position that changed during the pause is discarded by aiokafka itself.
"""

from __future__ import annotations

import asyncio
import time


def install(interval_ms: float) -> None:
    """Space each consumer's fetches to one broker `interval_ms` apart (0: no pacing)."""
    from aiokafka.consumer.fetcher import Fetcher

    original = Fetcher._proc_fetch_request
    original = getattr(original, "__wrapped__", original)
    if interval_ms <= 0:
        Fetcher._proc_fetch_request = original
        return
    interval_s = interval_ms / 1000

    async def _proc_fetch_request(self, assignment, node_id, request):
        started: dict = self.__dict__.setdefault("_aegis_fetch_started", {})
        wait = started.get(node_id, float("-inf")) + interval_s - time.monotonic()
        if wait > 0:
            try:
                await asyncio.sleep(wait)
            except asyncio.CancelledError:
                # Cancelled by close() or an assignment change, as aiokafka cancels a fetch
                # in flight: the original answers that with False, and close() relies on it.
                return False
        started[node_id] = time.monotonic()
        return await original(self, assignment, node_id, request)

    _proc_fetch_request.__wrapped__ = original  # type: ignore[attr-defined]
    Fetcher._proc_fetch_request = _proc_fetch_request
