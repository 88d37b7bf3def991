"""The stale-ack guard and the changelog highwater fix, as AegisApp's consumer classes carry
them; Faust's own classes (a plain faust.App) stay as they are."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

import faust
from aiokafka import TopicPartition
from faust.transport.consumer import Consumer as FaustConsumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

from aegis_app.kafka.faust_compat import (
    TrueHighwaters,
    pause_all_but,
    skipped_unprocessed,
    true_end_offsets,
)
from aegis_app.kafka.faust_ext import AegisApp


def message(tracked: bool, generation_id: int | None) -> SimpleNamespace:
    return SimpleNamespace(tracked=tracked, generation_id=generation_id)


def test_only_untracked_messages_from_a_rebalance_lose_their_ack():
    # fetched before the latest rebalance and skipped by the stream: no ack
    assert skipped_unprocessed(message(False, 3), generation_id=4, flow_active=True)
    # read while flow control is paused (a rebalance in progress): no ack
    assert skipped_unprocessed(message(False, 4), generation_id=4, flow_active=False)
    # processed messages keep their ack, whenever it comes (Faust waits for them)
    assert not skipped_unprocessed(message(True, 3), generation_id=4, flow_active=False)
    # an untracked message of the current generation, flow running: a normal ack
    assert not skipped_unprocessed(message(False, 4), generation_id=4, flow_active=True)


def _app(**options) -> AegisApp:
    return AegisApp(
        "compat-test",
        broker="kafka://127.0.0.1:1",
        fetch_max_wait_ms=50,
        fetch_interval_ms=0,
        store="memory://",
        web_enabled=False,
        **options,
    )


def test_aegis_consumer_refuses_a_stale_ack_and_counts_it_per_consumer():
    app, other = _app(), _app()
    app.consumer_generation_id = 2
    app.flow_control.resume()
    # refused before Faust's own bookkeeping is touched (the fake message has none)
    assert app.consumer.ack(message(False, 1)) is False
    assert app.consumer.refused_stale_acks == 1
    assert app.consumer.stale_message_counts()["refused_stale_acks"] == 1
    assert other.consumer.refused_stale_acks == 0


def test_a_plain_faust_app_keeps_fausts_own_ack():
    _app()  # an AegisApp in the same process changes nothing for the plain one
    plain = faust.App("plain-compat-test", broker="kafka://127.0.0.1:1", web_enabled=False)
    assert type(plain.consumer).ack is FaustConsumer.ack
    assert FaustConsumer.ack.__module__ == "faust.transport.consumer"
    assert not hasattr(plain.consumer, "refused_stale_acks")
    assert AIOKafkaConsumerThread._highwaters.__module__ == "faust.transport.drivers.aiokafka"
    assert not hasattr(FaustConsumer.ack, "__wrapped__")


# --------------------------------------------------------------------------- highwaters


class FakeClient:
    """Leader 0 for every partition; a Fetch answers `highwater` for each partition."""

    def __init__(self, highwater: int, fail: bool = False) -> None:
        self.cluster = SimpleNamespace(leader_for_partition=lambda tp: 0)
        self.highwater = highwater
        self.fail = fail
        self.requests: list = []

    async def send(self, node_id, request):
        self.requests.append((node_id, request))
        if self.fail:
            raise ConnectionError("broker went away")
        topics = [
            (topic, [(partition, 0, self.highwater) for partition, *_ in parts])
            for topic, parts in request.topics
        ]
        return SimpleNamespace(topics=topics)


class FakeFaustThread:
    """What TrueHighwaters needs of Faust's AIOKafkaConsumerThread."""

    def __init__(self, reported: dict, client: FakeClient, in_transaction: bool = False):
        self.reported = reported
        self.client = client
        self.consumer = SimpleNamespace(in_transaction=in_transaction)

    async def _highwaters(self, partitions):
        return dict(self.reported)

    def _ensure_consumer(self):
        return SimpleNamespace(_client=self.client)


class Thread(TrueHighwaters, FakeFaustThread):
    pass


TP = TopicPartition("aegis-card_state-changelog", 1)
EMPTY = TopicPartition("aegis-card_state-changelog", 2)


def test_end_offsets_are_raised_to_the_fetch_high_watermark(caplog):
    client = FakeClient(highwater=10)
    caplog.set_level(logging.INFO, logger="aegis_app.kafka.faust_compat")
    ends = asyncio.run(Thread({TP: 1, EMPTY: 0}, client)._highwaters([TP, EMPTY]))
    assert ends == {TP: 10, EMPTY: 0}  # an empty partition is not asked about
    assert "ListOffsets said 1, fetch high watermark 10" in caplog.text
    assert asyncio.run(true_end_offsets(FakeClient(highwater=1), {TP: 5})) == {TP: 5}


def test_a_failed_fetch_falls_back_to_fausts_answer(caplog):
    ends = asyncio.run(Thread({TP: 1}, FakeClient(10, fail=True))._highwaters([TP]))
    assert ends == {TP: 1}
    assert "end-offset check failed" in caplog.text


def test_transactional_mode_is_left_alone():
    client = FakeClient(highwater=10)
    assert asyncio.run(Thread({TP: 1}, client, in_transaction=True)._highwaters([TP])) == {TP: 1}
    assert client.requests == []


class PausableConsumer:
    """aiokafka's assignment / paused / pause / resume, in memory."""

    def __init__(self, assigned) -> None:
        self._assigned, self._paused, self.calls = set(assigned), set(), []

    def assignment(self):
        return set(self._assigned)

    def paused(self):
        return set(self._paused)

    def pause(self, *tps):
        self.calls.append(("pause", sorted(tps)))
        self._paused.update(tps)

    def resume(self, *tps):
        self.calls.append(("resume", sorted(tps)))
        self._paused.difference_update(tps)


def test_what_faust_leaves_out_is_paused_in_aiokafka_and_resumed_when_asked_again():
    from faust.types import TP

    changelog = [TopicPartition("app-card_state-changelog", p) for p in range(2)]
    stream = [TopicPartition("aegis.transactions", p) for p in range(2)]
    consumer = PausableConsumer(changelog + stream)
    # Faust's own TP tuples name the partitions it asks records of.
    pause_all_but(consumer, {TP("aegis.transactions", 0), TP("aegis.transactions", 1)})
    assert consumer.paused() == set(changelog)
    pause_all_but(consumer, {TP("aegis.transactions", 0), TP("aegis.transactions", 1)})
    assert len(consumer.calls) == 1  # nothing changed: nothing asked of aiokafka
    # Recovery asks for a changelog partition again: resumed; a stream's is left out.
    pause_all_but(consumer, {TP("app-card_state-changelog", 0), TP("aegis.transactions", 0)})
    assert consumer.paused() == {changelog[1], stream[1]}
