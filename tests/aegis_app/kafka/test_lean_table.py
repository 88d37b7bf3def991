"""LeanTable.put/lookup against fakes of the store and the producer: what reaches the store,
which changelog partition gets which bytes, and when the persisted offset moves."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

import aegis_app.worker.app  # noqa: F401 - the Faust app first (tables import it)
from aegis_app.kafka import lean_table
from aegis_app.kafka.lean_table import LeanTable


class FakeStore(dict):
    def __init__(self) -> None:
        super().__init__()
        self.persisted: dict[int, int] = {}

    def set_persisted_offset(self, tp, offset: int) -> None:
        self.persisted[tp.partition] = offset


class FakeChangelog:
    def get_topic_name(self) -> str:
        return "app-card_state-changelog"

    def prepare_key(self, key, serializer):
        return f"k:{key}:{serializer}".encode(), None

    def prepare_value(self, value, serializer):
        return f"v:{value}:{serializer}".encode(), None


def fake_table() -> SimpleNamespace:
    table = SimpleNamespace(
        app=SimpleNamespace(in_transaction=False),
        data=FakeStore(),
        changelog_topic=FakeChangelog(),
        key_serializer="raw",
        value_serializer="json",
    )
    table._on_lean_changelog_sent = lambda ack: LeanTable._on_lean_changelog_sent(table, ack)
    table._on_changelog_sent = lambda ack: LeanTable._on_changelog_sent(table, ack)
    return table


@pytest.fixture
def sent(monkeypatch):
    records: list[tuple] = []
    acks: list[asyncio.Future] = []

    async def send(app, topic, key, value, partition=None):
        ack = asyncio.get_running_loop().create_future()
        records.append((topic, key, value, partition))
        acks.append(ack)
        return ack

    monkeypatch.setattr(lean_table.raw_producer, "send", send)
    monkeypatch.setattr(
        lean_table, "current_event", lambda: SimpleNamespace(message=SimpleNamespace(partition=3))
    )
    return records, acks


def test_put_writes_the_store_and_the_changelog_of_the_event_partition(sent):
    records, acks = sent
    table = fake_table()

    async def scenario():
        await LeanTable.put(table, "42", [1, 2])
        assert table.data["42"] == [1, 2]
        assert records == [("app-card_state-changelog", b"k:42:raw", b"v:[1, 2]:json", 3)]
        assert table.data.persisted == {}  # not before the broker's ack
        tp = SimpleNamespace(topic="app-card_state-changelog", partition=3)
        metadata = SimpleNamespace(topic_partition=tp, offset=17)
        acks[0].set_result(metadata)
        await asyncio.sleep(0)

    asyncio.run(scenario())
    assert table.data.persisted == {3: 17}


def test_a_refused_changelog_record_leaves_the_persisted_offset(sent):
    _records, acks = sent
    table = fake_table()

    async def scenario():
        await LeanTable.put(table, "42", [1])
        acks[0].set_exception(RuntimeError("broker said no"))
        await asyncio.sleep(0)

    asyncio.run(scenario())
    assert table.data.persisted == {}


def test_put_outside_a_stream_is_refused(monkeypatch):
    monkeypatch.setattr(lean_table, "current_event", lambda: None)
    with pytest.raises(RuntimeError, match="inside a stream"):
        asyncio.run(LeanTable.put(fake_table(), "42", [1]))


def test_lookup_reads_once_and_defaults_when_missing():
    table = fake_table()
    table.data["7"] = [3]
    assert LeanTable.lookup(table, "7") == [3]
    assert LeanTable.lookup(table, "8") is None
    assert LeanTable.lookup(table, "8", default=[]) == []
