"""The seek gate: no stream message from a batch fetched before a rebalance's last seek."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

import faust
from aiokafka import TopicPartition
from faust.transport.consumer import Consumer as FaustConsumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

from aegis_app.kafka.faust_ext import AegisApp
from aegis_app.kafka.seek_gate import (
    SeekGate,
    SeekGatedConsumer,
    SeekGatedConsumerThread,
    StampedRecords,
    seek_all_to_committed,
)


def test_streams_stay_closed_until_the_rebalance_makes_its_last_seek():
    gate = SeekGate()
    assert not gate.admits(0)  # a new worker: nothing before its first assignment's seek
    gate.rebalance_started()
    gate.seek_completed(rebalance=1)  # a seek while the stream partitions are paused
    assert not gate.admits(gate.epoch)
    gate.final_seek_requested(rebalance=1)
    fetched_before = gate.epoch
    gate.seek_completed(rebalance=1)
    assert not gate.admits(fetched_before)  # fetched at the old position: read again
    assert gate.admits(gate.epoch)


def test_a_later_seek_refuses_the_batches_fetched_before_it():
    gate = SeekGate()
    gate.final_seek_requested(rebalance=1)
    gate.seek_completed(rebalance=1)
    fetched = gate.epoch
    gate.seek_completed(rebalance=1)  # e.g. Faust's seek when it reads with flow stopped
    assert not gate.admits(fetched)
    assert gate.admits(gate.epoch)


def test_a_new_rebalance_closes_the_streams_and_a_stale_last_seek_does_not_open_them():
    gate = SeekGate()
    gate.final_seek_requested(rebalance=1)
    gate.seek_completed(rebalance=1)
    gate.rebalance_started()
    assert not gate.admits(gate.epoch)
    gate.final_seek_requested(rebalance=2)
    gate.seek_completed(rebalance=3)  # another rebalance began while the seek was in flight
    assert not gate.admits(gate.epoch)


def test_an_unstamped_batch_is_left_to_faust():
    assert SeekGate().admits(None)


class FakeKafkaConsumer:
    """The three aiokafka calls the seek makes, recording the moves it asks for."""

    def __init__(self, committed: dict) -> None:
        self._committed = committed
        self.moves: list[tuple[str, int]] = []

    def assignment(self):
        return set(self._committed)

    async def committed(self, tp):
        await asyncio.sleep(0)  # a broker round trip: no partition may move before all
        assert not self.moves, "a partition moved before every offset was looked up"
        return self._committed[tp]

    def seek(self, tp, offset):
        self.moves.append((tp, offset))


def test_every_stream_partition_moves_after_all_lookups_and_changelogs_stay_put():
    kafka = FakeKafkaConsumer(
        {"tx/0": 254, "tx/1": None, "tx/2": 0, "card-changelog/0": None, "card-changelog/1": 7}
    )
    committed = asyncio.run(seek_all_to_committed(kafka, lambda tp: "changelog" in tp))
    assert committed == kafka._committed
    # uncommitted stream partitions restart at 0 (auto_offset_reset "earliest"), so a
    # dropped record is read again; an uncommitted changelog is left to table recovery
    assert sorted(kafka.moves) == [("card-changelog/1", 7), ("tx/0", 254), ("tx/1", 0), ("tx/2", 0)]


# --------------------------------------------------------------------------- the consumer

TX0 = TopicPartition("aegis.transactions", 0)
CHANGELOG0 = TopicPartition("aegis-card_state-changelog", 0)


class FakeFaustConsumer:
    """What SeekGatedConsumer needs of Faust's Consumer: one batch, and the call log."""

    def __init__(self, batch: StampedRecords, active: set) -> None:
        self.batch = batch
        self._active_partitions = active
        self.app = SimpleNamespace(rebalancing_count=1)
        self.calls: list[str] = []

    def _is_changelog_tp(self, tp) -> bool:
        return tp.topic.endswith("-changelog")

    async def _wait_next_records(self, timeout):
        return self.batch, self._active_partitions

    async def getmany(self, timeout):
        await self._wait_next_records(timeout)  # as Faust's getmany does
        for tp, messages in self.batch.items():
            for message in messages:
                yield tp, message

    async def perform_seek(self):
        self.calls.append("seek")

    async def on_partitions_revoked(self, revoked):
        self.calls.append("revoked")

    async def on_partitions_assigned(self, assigned, generation_id=0):
        self.calls.append(f"assigned {generation_id}")


class GatedConsumer(SeekGatedConsumer, FakeFaustConsumer):
    pass


def _batch(epoch: int) -> StampedRecords:
    batch = StampedRecords(
        {
            TX0: [SimpleNamespace(offset=o) for o in (255, 256, 257)],
            CHANGELOG0: [SimpleNamespace(offset=9)],
        }
    )
    batch.seek_epoch = epoch
    return batch


async def _drain(consumer) -> list:
    return [(tp, m.offset) async for tp, m in consumer.getmany(1.0)]


def test_a_stale_batch_reaches_faust_with_its_changelog_records_only(caplog):
    caplog.set_level(logging.INFO, logger="aegis_app.kafka.seek_gate")
    consumer = GatedConsumer(_batch(epoch=0), active={TX0})
    assert asyncio.run(_drain(consumer)) == [(CHANGELOG0, 9)]  # the gate is still closed
    assert consumer.seek_gate.dropped == 3
    assert "dropped 3 records of aegis.transactions/0 (255..257) fetched in seek 0" in caplog.text


def test_the_rebalances_last_seek_opens_the_gate_for_batches_fetched_after_it():
    consumer = GatedConsumer(_batch(epoch=1), active={TX0})
    asyncio.run(consumer.on_partitions_assigned({TX0}, generation_id=3))
    asyncio.run(consumer.perform_seek())  # stream partitions resumed: the last seek
    consumer.seek_gate.seek_completed(rebalance=1)  # the thread completes it
    assert consumer.calls == ["assigned 3", "seek"]
    assert len(asyncio.run(_drain(consumer))) == 4
    asyncio.run(consumer.on_partitions_revoked({TX0}))  # a new rebalance closes it again
    assert asyncio.run(_drain(consumer)) == [(CHANGELOG0, 9)]


def test_a_seek_while_the_streams_are_paused_does_not_open_the_gate():
    consumer = GatedConsumer(_batch(epoch=1), active={CHANGELOG0})  # recovery: streams paused
    asyncio.run(consumer.perform_seek())
    consumer.seek_gate.seek_completed(rebalance=1)
    assert asyncio.run(_drain(consumer)) == [(CHANGELOG0, 9)]


class FakeKafkaThread:
    """What SeekGatedConsumerThread needs of Faust's AIOKafkaConsumerThread."""

    def __init__(self, consumer, kafka) -> None:
        self.consumer = consumer
        self.kafka = kafka

    def _ensure_consumer(self):
        return self.kafka

    async def call_thread(self, method, *args, **kwargs):
        return await method(*args, **kwargs)

    async def _fetch_records(self, consumer, active_partitions, timeout=None, max_records=None):
        return {TX0: ["record"]}


class GatedThread(SeekGatedConsumerThread, FakeKafkaThread):
    pass


def test_the_thread_counts_its_seeks_and_stamps_each_batch_with_the_epoch(caplog):
    caplog.set_level(logging.INFO, logger="aegis_app.kafka.seek_gate")
    consumer = GatedConsumer(_batch(epoch=0), active={TX0})
    thread = GatedThread(consumer, FakeKafkaConsumer({TX0: 254, CHANGELOG0: None}))
    before = asyncio.run(thread._fetch_records(None, {TX0}))
    consumer.seek_gate.final_seek_requested(rebalance=1)
    committed = asyncio.run(thread.seek_to_committed())
    after = asyncio.run(thread._fetch_records(None, {TX0}))
    assert committed == {TX0: 254, CHANGELOG0: None}
    assert thread.kafka.moves == [(TX0, 254)]  # the uncommitted changelog stays put
    assert (before.seek_epoch, after.seek_epoch) == (0, 1)
    assert dict(after) == {TX0: ["record"]}
    assert not consumer.seek_gate.admits(before.seek_epoch)
    assert consumer.seek_gate.admits(after.seek_epoch)
    assert "seek 1 to committed offsets {'aegis.transactions/0': 254}" in caplog.text


# --------------------------------------------------------------------------- the wiring


def _app(name: str) -> AegisApp:
    return AegisApp(
        name,
        broker="kafka://127.0.0.1:1",
        fetch_max_wait_ms=50,
        fetch_interval_ms=0,
        store="memory://",
        web_enabled=False,
    )


def test_each_aegis_consumer_has_its_own_gate_and_a_plain_app_none():
    a, b = _app("gate-a"), _app("gate-b")
    assert a.consumer.seek_gate is not b.consumer.seek_gate
    assert isinstance(a.consumer, SeekGatedConsumer)
    assert isinstance(a.consumer._thread, SeekGatedConsumerThread)
    plain = faust.App("gate-plain", broker="kafka://127.0.0.1:1", web_enabled=False)
    assert not hasattr(plain.consumer, "seek_gate")
    # the plain app runs Faust's own methods, defined where Faust defines them
    for obj, cls, name in [
        (plain.consumer, FaustConsumer, "getmany"),
        (plain.consumer, FaustConsumer, "perform_seek"),
        (plain.consumer, FaustConsumer, "_wait_next_records"),
        (plain.consumer._thread, AIOKafkaConsumerThread, "seek_to_committed"),
        (plain.consumer._thread, AIOKafkaConsumerThread, "_fetch_records"),
    ]:
        assert getattr(type(obj), name) is getattr(cls, name), name
        assert getattr(cls, name).__module__.startswith("faust.transport."), name
