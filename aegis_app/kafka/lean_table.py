"""A Faust table the worker's batch tasks read and write per partition, its changelog sent
on the raw producer.

A batch task (aegis_app/kafka/batches.py) runs outside any stream event, so it names the
partition: ``table.lookup_in(partition, key)`` reads that partition's RocksDB database, and
``await table.put_many_in({(partition, key): value, ...})`` does for a whole batch what
``table[key] = value`` does for a plain table (no windows, no key expiry): each value goes
into the store of its partition, the same records go to the changelog partitions of the
same numbers (one record batch each), and once the broker acknowledges a batch the store
remembers the offset of its last record (Faust's "persisted offset", what recovery resumes
from). The difference is only the cost: the records skip Faust's per-message layers (see
aegis_app/raw_producer.py). ``table[key] = value`` still works, the Faust way, for anything
off the hot path.

The serialization is Faust's own (the store's key and value encoding, the changelog topic's
``prepare_key`` and ``prepare_value``), or plain code where that gives the same bytes
(``_codec_of``), so recovery and standby replicas read these records unchanged.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, NamedTuple

import faust
from rocksdict import WriteBatch

from aegis_app.kafka import raw_producer
from aegis_app.kafka.unlogged import write_without_log


class ChangelogRecord(NamedTuple):
    """A state write's changelog record: its partition, key and value as bytes."""

    partition: int
    key: bytes
    value: bytes


class LeanTable(faust.Table):
    # Changelog records queued and acknowledged since the worker started, and the offset of
    # the last acknowledged one per partition: /health/ (a replica is current with this
    # worker's writes once it has read past them).
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.changelog_queued = 0
        self.changelog_acked = 0
        self.changelog_last_offsets: dict[int, int] = {}
        self._unlogged: set[int] = set()  # the databases _db_in has set to write without a log

    def changelog_status(self) -> dict:
        """This table's part of the worker's /health/."""
        return {
            "queued": self.changelog_queued,
            "acknowledged": self.changelog_acked,
            "last_offsets": dict(self.changelog_last_offsets),
        }

    def changelog_key(self, key: Any) -> bytes:
        """The key of `key`'s changelog records, as bytes (what a replica reads)."""
        return _codec_of(self).changelog_key(key)

    def lookup_in(self, partition: int, key: Any) -> Any:
        """The value of `key` in the store of `partition` (None if absent)."""
        codec = _codec_of(self)
        raw = self._db_in(partition).get(codec.store_key(key))
        return None if raw is None else codec.value_of(raw)

    async def put_many_in(self, writes: Mapping[tuple[int, Any], Any]) -> None:
        """Each (partition, key) -> value into its partition's store, and the changelog
        records as one record batch per partition."""
        await self.send_changelog(self.write_many_in(writes))

    def write_many_in(self, writes: Mapping[tuple[int, Any], Any]) -> list[ChangelogRecord]:
        """Each (partition, key) -> value into its partition's store, now; the changelog
        records that say so, to be sent by :meth:`send_changelog` (at once, or gathered
        with later batches' in order: the newest value of a key is sent last)."""
        if self.app.in_transaction:
            raise RuntimeError("put_many_in does not take part in exactly-once transactions")
        store, codec = self.data, _codec_of(self)
        records: list[ChangelogRecord] = []
        # One RocksDB write per partition (half the cost of a put per key).
        batches: dict[int, WriteBatch] = defaultdict(lambda: WriteBatch(raw_mode=True))
        for (partition, key), value in writes.items():
            stored_key = codec.store_key(key)
            store._key_index[stored_key] = partition  # what the store's own writes keep
            batches[partition].put(stored_key, codec.store_value(value))
            records.append(
                ChangelogRecord(partition, codec.changelog_key(key), codec.changelog_value(value))
            )
        for partition, batch in batches.items():
            self._db_in(partition).write(batch)
        return records

    async def send_changelog(self, records: Sequence[ChangelogRecord]) -> None:
        """Send changelog records (write_many_in's) as one record batch per partition, each
        key's newest value only; once the broker acknowledges a batch, the store's persisted
        offset moves to its last."""
        # A key written more than once since the last send: only its newest value goes (the
        # changelog is compacted anyway; recovery and replicas keep the newest per key).
        newest = {(r.partition, r.key): r.value for r in records}
        by_partition: dict[int, list[tuple[bytes, bytes]]] = defaultdict(list)
        for (partition, key), value in newest.items():
            by_partition[partition].append((key, value))
        topic = self.changelog_topic.get_topic_name()
        for partition, items in by_partition.items():
            self.changelog_queued += len(items)
            for _, count, ack in await raw_producer.send_many(self.app, topic, items, partition):
                ack.add_done_callback(partial(self._on_lean_batch_sent, count))

    def _db_in(self, partition: int) -> Any:
        """The RocksDB database of `partition`, set to write without its write-ahead log the
        first time: the changelog is the log. A worker that dies loses what was only in
        memory, states and Faust's persisted offset alike (the offset is written after the
        states it covers), so recovery replays the changelog from a consistent earlier
        point."""
        db = self.data._db_for_partition(partition)
        if id(db) not in self._unlogged:
            write_without_log(db)
            self._unlogged.add(id(db))
        return db

    def _on_lean_batch_sent(self, count: int, ack: asyncio.Future) -> None:
        # The batch's acknowledgement names its first record; the persisted offset is its
        # last one's, as if each record had been acknowledged on its own. Faust's own
        # callback records it (or defers it to the commit in exactly-once mode).
        if ack.cancelled() or ack.exception() is not None:
            # Not acknowledged: the offset stays where it was, so a restart replays from
            # there; Faust's own changelog sends behave the same.
            return
        first = ack.result()
        last = first._replace(offset=first.offset + count - 1)
        self.changelog_acked += count
        self.changelog_last_offsets[last.partition] = last.offset
        self._on_changelog_sent(_Acknowledged(last))


class _Codec(NamedTuple):
    """How a table's keys and values become bytes, in its store and its changelog."""

    store_key: Callable[[Any], bytes]
    store_value: Callable[[Any], bytes]
    value_of: Callable[[bytes], Any]  # a stored value's bytes -> the value
    changelog_key: Callable[[Any], bytes]
    changelog_value: Callable[[Any], bytes]


def _same(value: Any) -> Any:
    return value


def _codec_of(table: Any) -> _Codec:
    """The table's codec, made once: Faust's serializers, with plain equivalents where they
    give the same bytes (bytes values as they are; text keys as UTF-8 for "raw" keys, or as
    a JSON string for "json" keys, the worker's tables), which saves a few µs per state read
    and write, on every transaction."""
    codec = getattr(table, "_lean_codec", None)
    if codec is not None:
        return codec
    store, changelog = table.data, table.changelog_topic
    faust = _Codec(
        store_key=store._encode_key,
        store_value=store._encode_value,
        value_of=store._decode_value,
        changelog_key=lambda key: changelog.prepare_key(key, table.key_serializer)[0],
        changelog_value=lambda value: changelog.prepare_value(value, table.value_serializer)[0],
    )
    value = b"\x00probe\xff"
    if faust.store_value(value) == value == faust.changelog_value(value) == faust.value_of(value):
        faust = faust._replace(store_value=_same, changelog_value=_same, value_of=_same)
    key = "probe-1"
    for plain in (str.encode, _as_json_string(faust.store_key)):
        if plain(key) == faust.store_key(key) == faust.changelog_key(key):
            faust = faust._replace(store_key=plain, changelog_key=plain)
            break
    table._lean_codec = faust
    return faust


def _as_json_string(otherwise: Callable[[Any], bytes]) -> Callable[[Any], bytes]:
    """A text key as a JSON string: quoted, when it needs no escaping (printable ASCII
    without quotes or backslashes: every key the simulator and the presets produce);
    `otherwise` for anything else."""

    def encode(key: Any) -> bytes:
        if key.isascii() and key.isprintable() and '"' not in key and "\\" not in key:
            return b'"' + key.encode() + b'"'
        return otherwise(key)

    return encode


class _Acknowledged(NamedTuple):
    """A done acknowledgement: all Faust's changelog callback reads is ``result()``."""

    metadata: Any

    def result(self) -> Any:
        return self.metadata
