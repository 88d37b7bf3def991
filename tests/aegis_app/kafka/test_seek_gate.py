"""The seek gate: no stream message from a batch fetched before a rebalance's last seek."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from aegis_app.kafka import seek_gate
from aegis_app.kafka.seek_gate import SeekGate, seek_all_to_committed


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


def test_install_wraps_the_consumer_and_its_thread():
    from faust.transport.consumer import Consumer
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    assert seek_gate.install()
    for cls, name in [
        (Consumer, "getmany"),
        (Consumer, "perform_seek"),
        (Consumer, "on_partitions_assigned"),
        (AIOKafkaConsumerThread, "seek_to_committed"),
        (AIOKafkaConsumerThread, "_fetch_records"),
    ]:
        assert getattr(getattr(cls, name), "__wrapped__", None) is not None, name
    assert seek_gate.install()  # idempotent: wrapped once


def test_a_gate_per_consumer():
    a, b = SimpleNamespace(), SimpleNamespace()
    assert seek_gate.gate_of(a) is seek_gate.gate_of(a)
    assert seek_gate.gate_of(a) is not seek_gate.gate_of(b)
