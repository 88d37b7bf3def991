"""LeanTable.put/lookup (and the batch tasks' put_many_in/lookup_in) against fakes of the
store and the producer: what reaches the store, which changelog partition gets which bytes,
and when the persisted offset moves."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from aiokafka.structs import RecordMetadata

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


class FakePartitionedStore(FakeStore):
    """The RocksDB store's per-partition databases, as put_many_in and lookup_in use them."""

    def __init__(self) -> None:
        super().__init__()
        self.dbs: dict[int, dict] = {}
        self._key_index: dict[bytes, int] = {}

    def _db_for_partition(self, partition: int) -> dict:
        return _Db(self.dbs.setdefault(partition, {}))

    def _encode_key(self, key) -> bytes:
        return f"s:{key}".encode()

    def _encode_value(self, value) -> bytes:
        return repr(value).encode()

    def _decode_value(self, raw: bytes):
        return eval(raw.decode())  # noqa: S307 - the test's own repr of a list


class _Db:
    def __init__(self, data: dict) -> None:
        self.data = data

    def put(self, key: bytes, value: bytes) -> None:
        self.data[key] = value

    def get(self, key: bytes):
        return self.data.get(key)


def test_put_many_in_writes_each_partition_and_persists_each_batchs_last_offset(monkeypatch):
    batches: list[tuple] = []
    acks: list[asyncio.Future] = []

    async def send_many(app, topic, records, partition=None):
        ack = asyncio.get_running_loop().create_future()
        batches.append((topic, partition, list(records)))
        acks.append(ack)
        return [(partition, len(records), ack)]

    monkeypatch.setattr(lean_table.raw_producer, "send_many", send_many)
    table = fake_table()
    table.data = FakePartitionedStore()
    table._on_lean_batch_sent = lambda count, ack: LeanTable._on_lean_batch_sent(table, count, ack)

    async def scenario():
        await LeanTable.put_many_in(table, {(1, "a"): [1], (2, "b"): [2], (1, "c"): [3]})
        assert LeanTable.lookup_in(table, 1, "a") == [1]
        assert LeanTable.lookup_in(table, 1, "c") == [3]
        assert LeanTable.lookup_in(table, 2, "a") is None  # another partition's database
        assert table.data._key_index == {b"s:a": 1, b"s:b": 2, b"s:c": 1}
        assert batches == [
            (
                "app-card_state-changelog",
                1,
                [(b"k:a:raw", b"v:[1]:json"), (b"k:c:raw", b"v:[3]:json")],
            ),
            ("app-card_state-changelog", 2, [(b"k:b:raw", b"v:[2]:json")]),
        ]
        for partition, ack, first in ((1, acks[0], 100), (2, acks[1], 7)):
            tp = SimpleNamespace(topic="app-card_state-changelog", partition=partition)
            ack.set_result(RecordMetadata("t", partition, tp, first, 0, 0, 0))
        await asyncio.sleep(0)

    asyncio.run(scenario())
    # The batch's acknowledgement names its first record; the persisted offset is the last.
    assert table.data.persisted == {1: 101, 2: 7}
