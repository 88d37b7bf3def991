"""A local, read-only copy of one state table, kept from its changelog topic.

Why: the card stage decides a transaction on its own (one consumed record per decision),
so it needs the other entities' states (the merchant's, a category's) where it runs, while
those states are written by the entity stage of whichever worker owns their partition.
Every worker therefore reads every partition of each such table's changelog
(``<app id>-<entity>_state-changelog``, written by aegis_app/kafka/lean_table.py) into a
RocksDB database of its own, and the card stage reads states from there.

Freshness: a state reaches the replica one changelog fetch after the entity stage wrote it
(in live traffic, well under a second; /health/ ``state_replicas`` shows how many records
it is behind). Features that only look at history at least a label delay old are
therefore exact (docs/FEATURES.md, "State").

The database keeps each partition's next offset beside the states, written after the
states of each fetch, so a restarted worker reads only what it missed (states are whole
values: reading a record twice leaves the newest one, so a crash between the two writes
costs nothing). The database writes without RocksDB's write-ahead log (a third of the
cost of a write): a worker that dies loses what was only in memory, states and offsets
alike, and since each offset is written after its states, what survives is a consistent
earlier point, read on from there. A worker does not decide before its replicas have read
up to the end of the changelog once (:attr:`caught_up`).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from rocksdict import Rdict

from aegis_app.kafka.clients import Broker
from aegis_app.kafka.topic_listener import TopicListener, read_to_end
from aegis_app.kafka.unlogged import write_without_log

log = logging.getLogger(__name__)

# Key prefixes in the database: an entity's state, a partition's next offset.
STATE = b"s"
OFFSET = b"o"


class StateReplica(TopicListener):
    """The newest state of every key of one changelog topic, in a local database."""

    def __init__(
        self,
        broker_url: Broker,
        topic: str,
        path: Path,
        fetch_max_wait_ms: int = 500,
        retry_s: float = 2.0,
    ) -> None:
        super().__init__(broker_url, topic, retry_s)
        # How long a fetch waits for new records: the replica's freshness, at most.
        self.consumer_options = {"fetch_max_wait_ms": fetch_max_wait_ms}
        self.path = Path(path)
        self._db: Rdict | None = None  # opened by run(), closed when it ends
        self.applied = 0  # changelog records applied since the worker started
        self.behind = 0  # records the last fetch knew of that are not applied yet
        self.next_offsets: dict[int, int] = {}  # partition -> the next offset to apply
        # Set the first time the replica reaches the changelog's end; never cleared (a
        # later broker outage leaves the replica as it was, /health/ shows it).
        self.caught_up = asyncio.Event()

    def get(self, key: bytes) -> bytes | None:
        """The state of a key as the changelog record's key bytes (None: no state)."""
        return None if self._db is None else self._db.get(STATE + key)

    async def run(self) -> None:
        """Keep the replica until cancelled, in its database at `path`."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = Rdict(str(self.path))
        write_without_log(self._db)  # the changelog is the log (see the module's docstring)
        try:
            await super().run()
        finally:
            db, self._db = self._db, None
            db.close()

    def health(self) -> dict:
        """This replica's part of the worker's /health/."""
        return {
            "topic": self.topic,
            "status": self.status,
            "applied": self.applied,
            "behind": self.behind,
            "caught_up": self.caught_up.is_set(),
            "next_offsets": dict(self.next_offsets),
        }

    async def listen(self, consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> None:
        assert self._db is not None, "run() opens the database"
        self.next_offsets = {}
        for tp in partitions:
            stored = self._db.get(OFFSET + str(tp.partition).encode())
            if stored is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, int(stored))
            self.next_offsets[tp.partition] = 0 if stored is None else int(stored)
        self.status = "catching up"
        while True:
            fetched = await consumer.getmany(timeout_ms=1000)
            for tp, records in fetched.items():
                for record in records:
                    if record.key is None:
                        continue
                    if record.value is None:  # a tombstone: the key's state is gone
                        self._db.delete(STATE + record.key)
                    else:
                        self._db.put(STATE + record.key, record.value)
                if records:
                    self.next_offsets[tp.partition] = records[-1].offset + 1
                    offset_key = OFFSET + str(tp.partition).encode()
                    self._db.put(offset_key, str(self.next_offsets[tp.partition]).encode())
                    self.applied += len(records)
            self.behind = _behind(consumer, partitions, self.next_offsets)
            if not self.caught_up.is_set():
                if not await read_to_end(consumer, partitions):
                    continue
                self.caught_up.set()
                log.info("state replica of %s: read up to its end", self.topic)
            self.ready.set()
            self.status = "current" if self.behind == 0 else "reading"


def _behind(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition], next_offsets: dict[int, int]
) -> int:
    """Records up to the high watermarks the last fetches reported, not yet applied."""
    total = 0
    for tp in partitions:
        highwater = consumer.highwater(tp)
        if highwater is not None:
            total += max(0, highwater - next_offsets[tp.partition])
    return total
