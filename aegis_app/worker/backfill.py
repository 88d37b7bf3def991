"""Writing feature states built from history where the workers recover their tables from.

A worker keeps each entity's states in a Faust table (RocksDB) and rebuilds it at start-up
from the table's changelog topic, `<app id>-<entity>_state-changelog`. Each state written
there as the worker itself would write it (the table's own key and value serialization,
into the partition of the key in the table's source topic, which is the changelog
partition Faust uses) is recovered by a worker that starts afterwards as if it had
processed the history: it starts warm. A worker that is already running does not read it,
so this runs before the workers start; it refuses while the worker group has members.

The states come from tables/engine/snapshot.py; this module only places them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
from aiokafka.partitioner import DefaultPartitioner
from tqdm import tqdm

from aegis_app.core.records import format_datetime
from aegis_app.core.settings import Settings
from aegis_app.kafka import admin, clients
from aegis_app.kafka.clients import KafkaConnection
from aegis_app.kafka.lean_table import LeanTable
from aegis_app.kafka.producer import Deliveries, make_producer
from aegis_app.worker import run
from aegis_app.worker.app import build
from tables.engine.snapshot import EntityStates, build_states

# Sends in flight before their acknowledgements are checked (bounds memory, not speed).
CHECK_EVERY = 5000


class WorkersRunningError(RuntimeError):
    """Workers are consuming: they would not read what a backfill writes."""


@dataclass(frozen=True)
class ChangelogRecord:
    topic: str
    partition: int
    key: bytes
    value: bytes


def worker_tables(conf: Settings) -> tuple[dict[str, LeanTable], int]:
    """Entity -> the worker's table of its states, and the largest record the worker's
    producer sends; from the worker's own App (built, never started), so that keys and
    values are serialized exactly as the worker serializes them."""
    app, pipeline = build(conf)
    return dict(pipeline.states), int(app.conf.producer_max_request_size)


def source_partition(key: str, partitions: int) -> int:
    """The partition of a state key in its table's source topic (aegis.transactions for the
    card, aegis.by-entity for the others: both keyed by the key's UTF-8 text, partitioned
    by the producers' default murmur2), which is where the worker writes its changelog."""
    return DefaultPartitioner()(key.encode(), list(range(partitions)), [])


def changelog_records(
    built: Mapping[str, EntityStates],
    tables: Mapping[str, LeanTable],
    partitions: int,
    max_bytes: int,
) -> Iterator[ChangelogRecord]:
    """Each state as the record the worker's table would write to its changelog."""
    for entity, states in built.items():
        table = tables[entity]
        changelog = table.changelog_topic
        topic = changelog.get_topic_name()
        for key, blob in states.states.items():
            value, _ = changelog.prepare_value(blob, table.value_serializer)
            if len(value) > max_bytes:
                raise ValueError(
                    f"{entity} {key!r}: a state of {len(value):,} bytes, over the "
                    f"{max_bytes:,}-byte record limit of the worker's producer (a key with "
                    "this much traffic over its horizon cannot be kept by the stream either)"
                )
            key_bytes, _ = changelog.prepare_key(key, table.key_serializer)
            yield ChangelogRecord(topic, source_partition(key, partitions), key_bytes, value)


async def _group_members(conf: Settings) -> int:
    """Members of the workers' consumer group (Faust's group id is the app id)."""
    client = clients.admin_client(KafkaConnection.from_settings(conf))
    await client.start()
    try:
        described = await client.describe_consumer_groups([conf.app_id])
    finally:
        await client.close()
    members = 0
    for response in described:
        for group in response.groups:
            # (error code, group id, state, protocol type, protocol, members, ...)
            if group[1] == conf.app_id and group[0] == 0:
                members += len(group[5])
    return members


async def write_states(
    conf: Settings, built: Mapping[str, EntityStates], progress: bool = False
) -> dict[str, dict[str, Any]]:
    """Write every state into its changelog (topics created as the worker creates them);
    entity -> {topic, keys, bytes}. WorkersRunningError if workers are consuming."""
    connection = KafkaConnection.from_settings(conf)
    await admin.wait_for_broker_async(connection, timeout=60)
    members = await _group_members(conf)
    if members:
        raise WorkersRunningError(
            f"{members} worker(s) are running in consumer group {conf.app_id!r}: they would "
            "not read the backfilled states (a worker reads its changelogs when it starts). "
            "Stop the workers, run `aegis backfill`, then start them with fresh data dirs"
        )
    await admin.ensure_topics_async(connection, run.all_topics(conf), conf.partitions)
    tables, max_bytes = worker_tables(conf)
    total = sum(len(states.states) for states in built.values())
    producer = make_producer(connection, max_request_size=max_bytes)
    await producer.start()
    deliveries = Deliveries()
    try:
        records = changelog_records(built, tables, conf.partitions, max_bytes)
        with tqdm(total=total, desc="changelogs", unit="key", disable=not progress) as bar:
            for n, record in enumerate(records, 1):
                await deliveries.send(
                    lambda r=record: producer.send(
                        r.topic, r.value, key=r.key, partition=r.partition
                    )
                )
                bar.update(1)
                if n % CHECK_EVERY == 0:
                    await deliveries.check()
            await producer.flush()
            await deliveries.check(wait=True)
    finally:
        await producer.stop()
    return {
        entity: {
            "topic": tables[entity].changelog_topic.get_topic_name(),
            "keys": len(states.states),
            "bytes": states.bytes,
        }
        for entity, states in built.items()
    }


def backfill(conf: Settings, frame: pd.DataFrame, progress: bool = False) -> dict[str, object]:
    """Build the states of a normalised frame (the history, aegis_app.core.source) and write
    them into the workers' changelogs; a summary of what was written."""
    if frame.empty:
        raise ValueError("no transactions to build the state from")
    built = build_states(frame, conf.load_config(), progress=progress)
    written = asyncio.run(write_states(conf, built, progress))
    return {
        "rows": len(frame),
        "first_transaction": format_datetime(int(frame["ts"].min())),
        "as_of": format_datetime(int(frame["ts"].max())),
        "entities": written,
        "keys": sum(entry["keys"] for entry in written.values()),
        "bytes": sum(entry["bytes"] for entry in written.values()),
    }
