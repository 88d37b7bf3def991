"""Holding a producing loop to a rate: item n goes out n / rate seconds after the start."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class Pacer:
    """Paces a loop at `rate` items a second (None or 0: as fast as it goes).

    The schedule counts from the pacer's start, not from the previous item: a slow stretch
    (a broker stall, a busy event loop) is caught up at once instead of moving every later
    item back, so a run offers `rate` on average, as the benchmarks' "offered rate" says.
    """

    def __init__(
        self,
        rate: float | None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.rate = rate or None
        self._clock = clock
        self._sleep = sleep
        self.started = clock()

    async def wait(self, sent: int) -> None:
        """Sleep until `sent` items are due (returns at once when they already are)."""
        if self.rate is None:
            return
        ahead = self.started + sent / self.rate - self._clock()
        if ahead > 0:
            await self._sleep(ahead)

    def elapsed(self) -> float:
        """Seconds since the pacer started."""
        return self._clock() - self.started
