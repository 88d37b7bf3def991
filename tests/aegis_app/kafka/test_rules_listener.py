"""The rules listener on the embedded broker: from the beginning, the newest message per
key handed over once caught up (also when there is none), then after every change; a
tombstone removes its key, a message that is not a rule or list is ignored."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from aegis_app.kafka import clients
from aegis_app.kafka.admin import ensure_topics
from aegis_app.kafka.rule_updates import TOPIC_CONFIGS, list_message, rule_message
from aegis_app.kafka.rules_listener import RuleUpdatesListener

AT = datetime(2027, 1, 27, tzinfo=UTC)


def _rule(rule_id: int, version: int, state: str) -> tuple[bytes, bytes]:
    row = {
        "rule_id": rule_id,
        "version": version,
        "state": state,
        "expression": "amount > 1",
        "action": "block",
        "priority": 0,
        "reason": "",
        "changed_by": "analyst:a",
        "changed_at": AT,
        "note": None,
    }
    return rule_message(row, [])


VIP = list_message(
    {"name": "vip", "version": 1, "items": ["1"], "changed_by": "a", "changed_at": AT, "note": None}
)


def _topic(broker) -> str:
    name = f"test.rules.{uuid.uuid4().hex[:8]}"  # topics outlive tests
    ensure_topics(broker.bootstrap, [name], 1, configs=TOPIC_CONFIGS)
    return name


async def _send(broker, topic: str, *messages: tuple[bytes, bytes | None]) -> None:
    producer = clients.producer(broker.url, enable_idempotence=False)
    await producer.start()
    try:
        for key, value in messages:
            await producer.send_and_wait(topic, value=value, key=key)
    finally:
        await producer.stop()


async def _next(offers: list, count: int) -> list[dict]:
    deadline = asyncio.get_running_loop().time() + 15
    while len(offers) < count:
        assert asyncio.get_running_loop().time() < deadline, offers
        await asyncio.sleep(0.05)
    return offers[count - 1]


def test_newest_per_key_once_caught_up_then_every_change(broker):
    topic = _topic(broker)

    async def scenario() -> tuple[list, RuleUpdatesListener]:
        # Before the listener starts: two versions of rule 1, a list, a stray message.
        await _send(broker, topic, _rule(1, 1, "shadow"), VIP, (b"x", b"not json"))
        await _send(broker, topic, _rule(1, 2, "active"))
        offers: list[list[dict]] = []
        listener = RuleUpdatesListener(broker.url, offers.append, topic=topic, retry_s=0.2)
        task = asyncio.create_task(listener.run())
        try:
            first = await _next(offers, 1)
            assert listener.ready.is_set() and listener.status == "listening"
            assert sorted((m["kind"], m["version"]) for m in first) == [("list", 1), ("rule", 2)]
            await _send(broker, topic, _rule(2, 1, "shadow"))
            second = await _next(offers, 2)
            assert sorted(m.get("rule_id", 0) for m in second) == [0, 1, 2]
            await _send(broker, topic, (VIP[0], None))  # a tombstone: the list is gone
            third = await _next(offers, 3)
            assert [m["kind"] for m in third] == ["rule", "rule"]
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        return offers, listener

    offers, listener = asyncio.run(scenario())
    assert len(offers) == 3  # one hand-over per change, none for the stray message
    assert listener.undecodable == 1


def test_an_empty_topic_is_an_answer(broker):
    topic = _topic(broker)

    async def scenario() -> list:
        offers: list = []
        listener = RuleUpdatesListener(broker.url, offers.append, topic=topic, retry_s=0.2)
        task = asyncio.create_task(listener.run())
        try:
            await _next(offers, 1)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        return offers

    assert asyncio.run(scenario()) == [[]]
