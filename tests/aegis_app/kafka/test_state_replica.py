"""The state replica on the embedded broker: every partition of a changelog read into a
local database (the newest value per key; a tombstone removes it), caught up once it has
read to the end, current as new records arrive, and a restart reads only what it missed."""

from __future__ import annotations

import asyncio
import uuid

from aegis_app.kafka import clients
from aegis_app.kafka.admin import ensure_topics
from aegis_app.kafka.state_replica import StateReplica

PARTITIONS = 3


def _topic(broker) -> str:
    name = f"test.changelog.{uuid.uuid4().hex[:8]}"  # topics outlive tests
    ensure_topics(broker.bootstrap, [name], PARTITIONS)
    return name


async def _send(broker, topic: str, *records: tuple[bytes, bytes | None, int]) -> None:
    producer = clients.producer(broker.url, enable_idempotence=False)
    await producer.start()
    try:
        for key, value, partition in records:
            await producer.send_and_wait(topic, value=value, key=key, partition=partition)
    finally:
        await producer.stop()


async def _until(condition, what: str, seconds: float = 15) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.05)


async def _running(replica: StateReplica):
    return asyncio.create_task(replica.run())


async def _stop(task: asyncio.Task, replica: StateReplica) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert replica.get(b"a") is None  # closed: it answers nothing it no longer keeps


def test_every_partition_newest_per_key_then_current_then_resumed(broker, tmp_path):
    topic = _topic(broker)
    path = tmp_path / "replica"

    async def first_run() -> dict:
        # Before it starts: two states of key a, one of b and c, in three partitions.
        await _send(
            broker, topic, (b"a", b"a1", 0), (b"b", b"b1", 1), (b"a", b"a2", 0), (b"c", b"c1", 2)
        )
        replica = StateReplica(broker.url, topic, path, fetch_max_wait_ms=50, retry_s=0.2)
        task = await _running(replica)
        try:
            await asyncio.wait_for(replica.caught_up.wait(), 15)
            seen = {k: replica.get(k) for k in (b"a", b"b", b"c", b"d")}
            health = replica.health()
            await _send(broker, topic, (b"d", b"d1", 1), (b"b", None, 1))  # b: a tombstone
            await _until(lambda: replica.get(b"d") == b"d1", "a new state reaches the replica")
            await _until(lambda: replica.get(b"b") is None, "a tombstone removes the key")
            return {"seen": seen, "health": health, "applied": replica.applied}
        finally:
            await _stop(task, replica)

    first = asyncio.run(first_run())
    assert first["seen"] == {b"a": b"a2", b"b": b"b1", b"c": b"c1", b"d": None}
    assert first["health"] == {
        "topic": topic,
        "status": "current",
        "applied": 4,
        "behind": 0,
        "caught_up": True,
        "next_offsets": {0: 2, 1: 1, 2: 1},
    }
    assert first["applied"] == 6

    async def second_run() -> tuple[dict, int]:
        await _send(broker, topic, (b"a", b"a3", 0))  # while the replica is stopped
        replica = StateReplica(broker.url, topic, path, fetch_max_wait_ms=50, retry_s=0.2)
        task = await _running(replica)
        try:
            await asyncio.wait_for(replica.caught_up.wait(), 15)
            return {k: replica.get(k) for k in (b"a", b"b", b"c", b"d")}, replica.applied
        finally:
            await _stop(task, replica)

    seen, applied = asyncio.run(second_run())
    assert seen == {b"a": b"a3", b"b": None, b"c": b"c1", b"d": b"d1"}
    assert applied == 1  # only the record it missed: the rest came from its own database


def test_an_empty_changelog_is_caught_up_at_once(broker, tmp_path):
    topic = _topic(broker)

    async def scenario() -> dict:
        replica = StateReplica(broker.url, topic, tmp_path / "r", fetch_max_wait_ms=50)
        task = await _running(replica)
        try:
            await asyncio.wait_for(replica.caught_up.wait(), 15)
            return replica.health()
        finally:
            await _stop(task, replica)

    health = asyncio.run(scenario())
    assert health["caught_up"] and health["applied"] == 0 and health["behind"] == 0
