"""The Pacer's schedule, on a fake clock."""

from __future__ import annotations

import asyncio

from aegis_app.core.pacing import Pacer


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds


def test_items_go_out_at_the_rate_from_the_start():
    clock = FakeClock()
    pacer = Pacer(10.0, clock=clock, sleep=clock.sleep)

    async def send(n: int) -> None:
        for i in range(n):
            clock.now += 0.02  # each send takes 20 ms
            await pacer.wait(i + 1)

    asyncio.run(send(5))
    assert clock.slept == [0.08] * 5
    assert round(clock.now - pacer.started, 6) == 0.5  # 5 items at 10 a second
    assert round(pacer.elapsed(), 6) == 0.5


def test_a_late_stretch_is_caught_up_not_carried():
    clock = FakeClock()
    pacer = Pacer(10.0, clock=clock, sleep=clock.sleep)
    clock.now += 0.35  # a stall: items 1-3 are due already
    asyncio.run(pacer.wait(3))
    assert clock.slept == []
    asyncio.run(pacer.wait(4))
    assert clock.slept == [0.05]


def test_no_rate_never_sleeps():
    clock = FakeClock()
    for rate in (None, 0):
        asyncio.run(Pacer(rate, clock=clock, sleep=clock.sleep).wait(1000))
    assert clock.slept == []
