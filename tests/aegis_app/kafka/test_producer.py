"""The producer's delivery bookkeeping: a refused send is sent again, and a send that is
never taken fails loudly instead of being lost."""

from __future__ import annotations


def test_a_refused_send_is_sent_again_until_delivered():
    import asyncio

    from aiokafka.errors import KafkaTimeoutError

    from aegis_app.kafka.producer import Deliveries, DeliveryFailed

    async def scenario() -> tuple[int, list[str]]:
        loop = asyncio.get_running_loop()
        attempts: list[str] = []

        def outcome(name: str, fail: bool) -> asyncio.Future:
            attempts.append(name)
            future = loop.create_future()
            if fail:
                future.set_exception(KafkaTimeoutError())
            else:
                future.set_result("meta")
            return future

        async def flaky() -> asyncio.Future:  # refused once, then taken
            return outcome("flaky", fail=attempts.count("flaky") < 1)

        async def fine() -> asyncio.Future:
            return outcome("fine", fail=False)

        deliveries = Deliveries(attempts=3)
        await deliveries.send(flaky)
        await deliveries.send(fine)
        await deliveries.check(wait=True)

        async def dead() -> asyncio.Future:  # never taken: a clear error, not a silent loss
            return outcome("dead", fail=True)

        stubborn = Deliveries(attempts=3)
        await stubborn.send(dead)
        try:
            await stubborn.check(wait=True)
        except DeliveryFailed as exc:
            attempts.append(f"failed: {'3 attempts' in str(exc)}")
        return deliveries.resent, attempts

    resent, attempts = asyncio.run(scenario())
    assert resent == 1
    assert attempts == ["flaky", "fine", "flaky", "dead", "dead", "dead", "failed: True"]
