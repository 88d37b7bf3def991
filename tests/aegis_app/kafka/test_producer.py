"""Replay publishes each label only once the replayed clock reaches its known time."""

from __future__ import annotations

from aegis_app.core.files import iter_frame
from aegis_app.core.records import parse_datetime
from aegis_app.harness import simulator
from aegis_app.kafka.producer import publication_order
from tables.features import DAY


def test_labels_are_published_when_known_never_earlier():
    frame = simulator.generate(customers=40, terminals=80, days=20, seed=5)
    schedule = list(publication_order(iter_frame(frame), label_delay_days=7))
    clock = None  # time of the latest transaction published so far
    labels = 0
    for position, (kind, item) in enumerate(schedule):
        if kind == "tx":
            clock = item.ts
            continue
        assert kind == "label"
        labels += 1
        known_at = parse_datetime(item.known_at)
        assert known_at == parse_datetime(item.tx_datetime) + 7 * DAY
        later = [x for k, x in schedule[position + 1 :] if k == "tx"]
        if later:  # due: the next transaction is at or after the label's known time
            assert later[0].ts >= known_at
            assert clock is None or clock < known_at  # and it was not due any earlier
    assert labels == len(frame)  # every row of a labelled file gets its label


def test_bad_rows_are_reported_with_their_line_and_no_label():
    frame = simulator.generate(customers=10, terminals=20, days=3, seed=1)
    frame.loc[2, "TX_AMOUNT"] = -1.0
    schedule = list(publication_order(iter_frame(frame), label_delay_days=7))
    bad = [item for kind, item in schedule if kind == "bad"]
    assert bad == [(4, "tx_amount: must not be negative, got -1.0")]
    assert sum(kind == "label" for kind, _ in schedule) == len(frame) - 1


def test_no_labels_when_disabled():
    frame = simulator.generate(customers=10, terminals=20, days=3, seed=1)
    kinds = {kind for kind, _ in publication_order(iter_frame(frame), label_delay_days=None)}
    assert kinds == {"tx"}


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
