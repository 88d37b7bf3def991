"""LeanTable's batch reads and writes (lookup_in, put_many_in) against a fake of the store
(over real RocksDB databases) and of the producer: what reaches each partition's store,
which changelog partition gets which bytes, and when the persisted offset moves."""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest
from aiokafka.structs import RecordMetadata
from rocksdict import Options, Rdict

import aegis_app.worker.app  # noqa: F401 - the Faust app first (tables import it)
from aegis_app.kafka import lean_table
from aegis_app.kafka.lean_table import LeanTable

TOPIC = "app-card_state-changelog"


class FakeChangelog:
    def get_topic_name(self) -> str:
        return TOPIC

    def prepare_key(self, key, serializer):
        return f"k:{key}:{serializer}".encode(), None

    def prepare_value(self, value, serializer):
        return f"v:{value}:{serializer}".encode(), None


class FakePartitionedStore:
    """The RocksDB store's per-partition databases (real ones, opened as Faust opens them),
    as put_many_in and lookup_in use them."""

    def __init__(self) -> None:
        self.persisted: dict[int, int] = {}
        self.dbs: dict[int, Rdict] = {}
        self._key_index: dict[bytes, int] = {}
        self._dir = tempfile.TemporaryDirectory()

    def set_persisted_offset(self, tp, offset: int) -> None:
        self.persisted[tp.partition] = offset

    def _db_for_partition(self, partition: int) -> Rdict:
        if partition not in self.dbs:
            path = Path(self._dir.name) / str(partition)
            self.dbs[partition] = Rdict(str(path), Options(raw_mode=True))
        return self.dbs[partition]

    def _encode_key(self, key) -> bytes:
        return f"s:{key}".encode()

    def _encode_value(self, value) -> bytes:
        return repr(value).encode()

    def _decode_value(self, raw: bytes):
        return eval(raw.decode())  # noqa: S307 - the test's own repr of a list


def fake_table() -> SimpleNamespace:
    table = SimpleNamespace(
        app=SimpleNamespace(in_transaction=False),
        data=FakePartitionedStore(),
        changelog_topic=FakeChangelog(),
        key_serializer="raw",
        value_serializer="json",
        changelog_queued=0,
        changelog_acked=0,
        changelog_last_offsets={},
        _unlogged=set(),
    )
    table._db_in = lambda partition: LeanTable._db_in(table, partition)
    table.write_many_in = lambda writes: LeanTable.write_many_in(table, writes)
    table.send_changelog = lambda records: LeanTable.send_changelog(table, records)
    table._on_changelog_sent = lambda ack: LeanTable._on_changelog_sent(table, ack)
    table._on_lean_batch_sent = lambda count, ack: LeanTable._on_lean_batch_sent(table, count, ack)
    return table


@pytest.fixture
def sent(monkeypatch):
    batches: list[tuple] = []
    acks: list[asyncio.Future] = []

    async def send_many(app, topic, records, partition=None):
        ack = asyncio.get_running_loop().create_future()
        batches.append((topic, partition, list(records)))
        acks.append(ack)
        return [(partition, len(records), ack)]

    monkeypatch.setattr(lean_table.raw_producer, "send_many", send_many)
    return batches, acks


def _acknowledge(ack: asyncio.Future, partition: int, first_offset: int) -> None:
    tp = SimpleNamespace(topic=TOPIC, partition=partition)
    ack.set_result(RecordMetadata(TOPIC, partition, tp, first_offset, 0, 0, 0))


def test_put_many_in_writes_each_partition_and_persists_each_batchs_last_offset(sent):
    batches, acks = sent
    table = fake_table()

    async def scenario():
        await LeanTable.put_many_in(table, {(1, "a"): [1], (2, "b"): [2], (1, "c"): [3]})
        assert LeanTable.lookup_in(table, 1, "a") == [1]
        assert LeanTable.lookup_in(table, 1, "c") == [3]
        assert LeanTable.lookup_in(table, 2, "a") is None  # another partition's database
        assert table.data._key_index == {b"s:a": 1, b"s:b": 2, b"s:c": 1}
        assert batches == [
            (TOPIC, 1, [(b"k:a:raw", b"v:[1]:json"), (b"k:c:raw", b"v:[3]:json")]),
            (TOPIC, 2, [(b"k:b:raw", b"v:[2]:json")]),
        ]
        assert table.data.persisted == {}  # not before the broker's ack
        assert table._unlogged == {id(db) for db in table.data.dbs.values()}  # once each
        _acknowledge(acks[0], 1, 100)
        _acknowledge(acks[1], 2, 7)
        await asyncio.sleep(0)

    asyncio.run(scenario())
    # The batch's acknowledgement names its first record; the persisted offset is the last.
    assert table.data.persisted == {1: 101, 2: 7}
    # /health/'s account of it: what a replica must read past to have this worker's writes.
    assert LeanTable.changelog_status(table) == {
        "queued": 3,
        "acknowledged": 3,
        "last_offsets": {1: 101, 2: 7},
    }


def test_a_refused_changelog_batch_leaves_the_persisted_offset(sent):
    _batches, acks = sent
    table = fake_table()

    async def scenario():
        await LeanTable.put_many_in(table, {(3, "42"): [1]})
        acks[0].set_exception(RuntimeError("broker said no"))
        await asyncio.sleep(0)

    asyncio.run(scenario())
    assert table.data.persisted == {}
    assert LeanTable.changelog_status(table) == {
        "queued": 1,
        "acknowledged": 0,
        "last_offsets": {},
    }


def test_written_now_sent_later_newest_per_key(sent):
    """write_many_in writes the store at once and sends nothing; send_changelog sends the
    records of several writes later, each key's newest value only."""
    batches, _acks = sent
    table = fake_table()
    first = LeanTable.write_many_in(table, {(1, "a"): [1]})
    second = LeanTable.write_many_in(table, {(1, "a"): [2], (0, "b"): [3]})
    assert LeanTable.lookup_in(table, 1, "a") == [2] and batches == []

    asyncio.run(LeanTable.send_changelog(table, first + second))
    assert batches == [
        (TOPIC, 1, [(b"k:a:raw", b"v:[2]:json")]),
        (TOPIC, 0, [(b"k:b:raw", b"v:[3]:json")]),
    ]
    assert table.changelog_queued == 2


def test_put_many_in_refuses_exactly_once_transactions(sent):
    table = fake_table()
    table.app.in_transaction = True
    with pytest.raises(RuntimeError, match="exactly-once"):
        asyncio.run(LeanTable.put_many_in(table, {(0, "42"): [1]}))


def test_lookup_in_is_none_when_missing():
    table = fake_table()
    assert LeanTable.lookup_in(table, 0, "8") is None


def _table_with(key_bytes, value_bytes) -> SimpleNamespace:
    """A table whose Faust serializers give these bytes (store and changelog alike)."""
    store = SimpleNamespace(
        _encode_key=key_bytes, _encode_value=value_bytes, _decode_value=value_bytes
    )
    changelog = SimpleNamespace(
        prepare_key=lambda key, serializer: (key_bytes(key), None),
        prepare_value=lambda value, serializer: (value_bytes(value), None),
    )
    return SimpleNamespace(
        data=store, changelog_topic=changelog, key_serializer="x", value_serializer="y"
    )


def test_the_codec_gives_faust_s_bytes_for_json_keys_and_raw_values():
    calls = []

    def faust_json(key):
        calls.append(key)
        return json.dumps(key, ensure_ascii=False).encode()

    codec = lean_table._codec_of(_table_with(faust_json, lambda value: value))
    for key in ("42", "card-7", "a b", 'quote"d', "back\\slash", "ü", "tab\there", ""):
        assert codec.store_key(key) == codec.changelog_key(key) == faust_json(key), key
    assert codec.store_value(b"\x00\xff") == b"\x00\xff" == codec.value_of(b"\x00\xff")
    calls.clear()
    codec.store_key("42")
    assert calls == []  # the plain path: no serializer call for a plain key


def test_the_codec_keeps_faust_s_serializers_when_they_differ():
    codec = lean_table._codec_of(_table_with(lambda key: b"k:" + key.encode(), lambda v: v[::-1]))
    assert codec.store_key("42") == b"k:42" and codec.store_value(b"ab") == b"ba"
