"""The bridge in-process: records read from a real moto server (over HTTP, with boto3) or,
for the parent-to-child hand-off moto cannot show, from an in-memory client with AWS's
resharding semantics; sends go to a recording producer so acknowledgement is in the test's
hands; checkpoints go to a real SQLite result store."""

from __future__ import annotations

import asyncio
import base64
import io
import re
from collections import defaultdict

import orjson
import pytest

from aegis_app.core.settings import DEADLETTER_TOPIC, TRANSACTIONS_TOPIC
from aegis_app.ingest.checkpoints import CheckpointBook
from aegis_app.ingest.kinesis import BridgeOptions, IngestError, KinesisBridge, KinesisStream
from aegis_app.kafka.producer import DeliveryFailed
from tests.aegis_app.ingest.conftest import REGION
from tests.aegis_app.ingest.fake_kinesis import FakeKinesis, RecordingProducer
from tests.aegis_app.ingest.streams import (
    CODEC,
    POISON,
    as_records,
    async_wait_until,
    generated,
    put_all,
    sent_id,
)


def make_bridge(stream, store, producer, progress_out=None, **options) -> KinesisBridge:
    settings = dict(poll_interval_s=0.05, shard_sync_s=0.2, progress_s=0, max_records=1000)
    settings.update(options)
    opts = BridgeOptions(stream_name=stream.stream_name, **settings)
    book = CheckpointBook(store, stream.stream_name)
    return KinesisBridge(stream, book, producer, opts, CODEC, progress_out)


def moto_stream(moto_server, stream_name) -> KinesisStream:
    return KinesisStream(stream_name, REGION, moto_server.url)


async def run_for(bridge, seconds: float) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(bridge.run(stop))
    await asyncio.sleep(seconds)
    stop.set()
    await task


async def run_until(bridge, condition, what: str, timeout: float = 30.0) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(bridge.run(stop))
    try:
        await async_wait_until(condition, timeout, what, task)
    finally:
        stop.set()
        await task


def forwarded_ids(producer: RecordingProducer) -> list[str]:
    return [sent_id(value) for _, value in producer.on(TRANSACTIONS_TOPIC)]


def last_sequence_per_shard(where) -> dict[str, int]:
    last: dict[str, int] = {}
    for shard_id, sequence in where:
        last[shard_id] = max(last.get(shard_id, 0), int(sequence))
    return last


def stored_sequences(store, stream_name) -> dict[str, int]:
    return {
        shard_id: int(row["sequence_number"])
        for shard_id, row in store.kinesis_checkpoints(stream_name).items()
        if row["sequence_number"] is not None
    }


# --------------------------------------------------------------------------- moto


def test_records_are_forwarded_keyed_by_card_and_poison_is_dead_lettered(
    kinesis, moto_server, stream_name, sqlite_store
):
    kinesis.create_stream(StreamName=stream_name, ShardCount=3)
    txs = generated(80, seed=1)
    where = put_all(kinesis, stream_name, as_records(txs))
    poison = [(f"poison-{i}", data) for i, (data, _) in enumerate(POISON)]
    poison_where = put_all(kinesis, stream_name, poison)
    producer = RecordingProducer()
    bridge = make_bridge(moto_stream(moto_server, stream_name), sqlite_store, producer)
    total = len(txs) + len(POISON)
    asyncio.run(run_until(bridge, lambda: len(producer.sent) >= total, "all forwarded"))

    by_id = {tx.transaction_id: tx for tx in txs}
    sent = producer.on(TRANSACTIONS_TOPIC)
    assert sorted(forwarded_ids(producer)) == sorted(by_id)
    for key, value in sent:  # exactly what `aegis replay` sends
        tx = by_id[sent_id(value)]
        assert value == CODEC.encode(tx.raw)
        assert key == tx.card.encode()
    put_order: dict[str, list[str]] = defaultdict(list)
    for tx in txs:
        put_order[tx.card].append(tx.transaction_id)
    sent_order: dict[str, list[str]] = defaultdict(list)
    for _, value in sent:
        record = CODEC.decode(value)
        sent_order[record["card"]].append(record["transaction_id"])
    assert sent_order == put_order, "each card's transactions keep their order"

    letters = {}
    for key, value in producer.on(DEADLETTER_TOPIC):
        letter = orjson.loads(value)
        letters[(letter["shard_id"], letter["sequence_number"])] = letter
        assert key == (
            f"kinesis:{stream_name}/{letter['shard_id']}/{letter['sequence_number']}".encode()
        )
    assert set(letters) == set(poison_where)
    for (key, data), (_, word), location in zip(poison, POISON, poison_where):
        letter = letters[location]
        assert word in letter["reason"], (word, letter["reason"])
        assert base64.b64decode(letter["payload_b64"]) == data
        assert base64.b64decode(letter["key_b64"]) == key.encode()
        assert letter["source_topic"] == f"kinesis:{stream_name}"
        assert letter["payload_bytes"] == len(data)

    assert stored_sequences(sqlite_store, stream_name) == last_sequence_per_shard(
        where + poison_where
    )
    assert (bridge.counts.forwarded, bridge.counts.dead_lettered) == (len(txs), len(POISON))


def test_a_restart_reads_after_the_checkpoints(kinesis, moto_server, stream_name, sqlite_store):
    kinesis.create_stream(StreamName=stream_name, ShardCount=2)
    stream = moto_stream(moto_server, stream_name)
    first = generated(50, seed=2)
    put_all(kinesis, stream_name, as_records(first))
    producer = RecordingProducer()
    asyncio.run(
        run_until(
            make_bridge(stream, sqlite_store, producer),
            lambda: len(producer.sent) >= len(first),
            "first batch",
        )
    )
    second = generated(50, seed=3, first_id=10_000)
    put_all(kinesis, stream_name, as_records(second))
    again = RecordingProducer()

    async def scenario() -> None:
        await run_until(
            make_bridge(stream, sqlite_store, again),
            lambda: len(again.sent) >= len(second),
            "second batch",
        )

    asyncio.run(scenario())
    assert sorted(forwarded_ids(again)) == sorted(tx.transaction_id for tx in second)


def test_checkpoints_wait_for_the_brokers_acknowledgement(
    kinesis, moto_server, stream_name, sqlite_store
):
    kinesis.create_stream(StreamName=stream_name, ShardCount=2)
    txs = generated(60, seed=4)
    where = put_all(kinesis, stream_name, as_records(txs))
    producer = RecordingProducer(hold=True)
    bridge = make_bridge(moto_stream(moto_server, stream_name), sqlite_store, producer)

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(bridge.run(stop))
        await async_wait_until(lambda: len(producer.sent) >= len(txs), 20, "sent", task)
        await asyncio.sleep(0.5)  # time enough for a checkpoint, were one due
        assert stored_sequences(sqlite_store, stream_name) == {}
        assert bridge.counts.forwarded == 0
        producer.acknowledge()
        await async_wait_until(
            lambda: stored_sequences(sqlite_store, stream_name) == last_sequence_per_shard(where),
            20,
            "checkpoints after the acknowledgement",
            task,
        )
        stop.set()
        await task

    asyncio.run(scenario())
    assert bridge.counts.forwarded == len(txs)


def test_a_broker_that_refuses_stops_the_bridge_without_a_checkpoint(
    kinesis, moto_server, stream_name, sqlite_store
):
    kinesis.create_stream(StreamName=stream_name, ShardCount=1)
    put_all(kinesis, stream_name, as_records(generated(20, seed=5)))
    bridge = make_bridge(
        moto_stream(moto_server, stream_name), sqlite_store, RecordingProducer(refuse=True)
    )
    with pytest.raises(DeliveryFailed, match="not delivered after 5 attempts"):
        asyncio.run(asyncio.wait_for(bridge.run(asyncio.Event()), 30))
    assert stored_sequences(sqlite_store, stream_name) == {}


def test_on_moto_a_reshard_loses_nothing_and_children_wait_for_their_parents(
    kinesis, moto_server, stream_name, sqlite_store
):
    """moto writes on to the closed parents after a split or merge and never ends them
    (see fake_kinesis.py): the bridge must read the parents on and leave the children alone
    (the merge child holds moto's copies of its parents' records)."""
    kinesis.create_stream(StreamName=stream_name, ShardCount=3)
    stream = moto_stream(moto_server, stream_name)
    before = generated(70, seed=6)
    put_all(kinesis, stream_name, as_records(before))
    after = generated(70, seed=7, first_id=20_000)
    poison = [(f"p{i}", data) for i, (data, _) in enumerate(POISON)]
    producer = RecordingProducer()
    bridge = make_bridge(stream, sqlite_store, producer)
    poison_where: list = []

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(bridge.run(stop))
        await async_wait_until(lambda: len(producer.sent) >= len(before), 20, "before", task)
        shards = kinesis.list_shards(StreamName=stream_name)["Shards"]
        hash_range = shards[0]["HashKeyRange"]
        middle = (int(hash_range["StartingHashKey"]) + int(hash_range["EndingHashKey"])) // 2
        kinesis.split_shard(
            StreamName=stream_name,
            ShardToSplit=shards[0]["ShardId"],
            NewStartingHashKey=str(middle),
        )
        kinesis.merge_shards(
            StreamName=stream_name,
            ShardToMerge=shards[1]["ShardId"],
            AdjacentShardToMerge=shards[2]["ShardId"],
        )
        put_all(kinesis, stream_name, as_records(after))
        poison_where.extend(put_all(kinesis, stream_name, poison))
        total = len(before) + len(after) + len(poison)
        await async_wait_until(lambda: len(producer.sent) >= total, 20, "after", task)
        await asyncio.sleep(1.0)  # several shard listings: children must still wait
        stop.set()
        await task

    asyncio.run(scenario())
    listing = {shard.shard_id: shard for shard in stream.list_shards()}
    parents = {s for s, info in listing.items() if not info.parents}
    children = set(listing) - parents
    assert len(children) == 3 and all(listing[s].closed for s in parents)
    assert sorted(forwarded_ids(producer)) == sorted(tx.transaction_id for tx in before + after), (
        "every transaction once: nothing lost, moto's merge copies not read"
    )
    letters = [orjson.loads(value) for _, value in producer.on(DEADLETTER_TOPIC)]
    assert {(x["shard_id"], x["sequence_number"]) for x in letters} == set(poison_where)
    assert set(bridge.tracker.waiting()) == children
    assert set(sqlite_store.kinesis_checkpoints(stream_name)) <= parents


def test_from_latest_skips_older_records_and_a_restart_keeps_that(
    kinesis, moto_server, stream_name, sqlite_store
):
    kinesis.create_stream(StreamName=stream_name, ShardCount=2)
    stream = moto_stream(moto_server, stream_name)
    old = generated(40, seed=8)
    put_all(kinesis, stream_name, as_records(old))
    new = generated(40, seed=9, first_id=30_000)
    producer = RecordingProducer()
    bridge = make_bridge(stream, sqlite_store, producer, start_from="latest")

    async def first_run() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(bridge.run(stop))
        await async_wait_until(
            lambda: len(sqlite_store.kinesis_checkpoints(stream_name)) == 2, 10, "start", task
        )
        await asyncio.sleep(0.3)
        await asyncio.to_thread(put_all, kinesis, stream_name, as_records(new))
        await async_wait_until(lambda: len(producer.sent) >= len(new), 20, "new", task)
        stop.set()
        await task

    asyncio.run(first_run())
    assert sorted(forwarded_ids(producer)) == sorted(tx.transaction_id for tx in new)
    rows = sqlite_store.kinesis_checkpoints(stream_name)
    assert all(row["started_at"] is not None for row in rows.values())

    latest = generated(40, seed=10, first_id=40_000)
    put_all(kinesis, stream_name, as_records(latest))
    again = RecordingProducer()
    # Restarted with --from trim_horizon: the stream has checkpoints, so it does not matter.
    asyncio.run(
        run_until(
            make_bridge(stream, sqlite_store, again),
            lambda: len(again.sent) >= len(latest),
            "latest",
        )
    )
    assert sorted(forwarded_ids(again)) == sorted(tx.transaction_id for tx in latest)


def test_progress_lines(kinesis, moto_server, stream_name, sqlite_store):
    kinesis.create_stream(StreamName=stream_name, ShardCount=1)
    txs = generated(15, seed=11)
    put_all(kinesis, stream_name, as_records(txs) + [("k", b"junk")])
    out = io.StringIO()
    producer = RecordingProducer()
    stream = moto_stream(moto_server, stream_name)
    bridge = make_bridge(stream, sqlite_store, producer, progress_out=out, progress_s=0.2)
    asyncio.run(
        run_until(bridge, lambda: out.getvalue().count(f"{len(txs)} forwarded") >= 1, "progress")
    )
    assert re.search(
        rf"kinesis {stream_name}: {len(txs)} forwarded \(\d+/s\), 1 dead-lettered \(\d+/s\); "
        r"shards: 1 reading, 0 waiting for a parent, 0 finished",
        out.getvalue(),
    ), out.getvalue()


# --------------------------------------------------------------------------- AWS semantics


def test_children_are_read_after_their_parents_and_finished_parents_are_remembered(
    sqlite_store,
):
    fake = FakeKinesis("handoff", shard_count=3)
    stream = KinesisStream("handoff", client=fake)
    where: dict[int, str] = {}  # transaction id -> shard it was put in

    def put(txs) -> None:
        for key, data in as_records(txs):
            shard_id, _ = fake.put(key, data)
            where[orjson.loads(data)["TRANSACTION_ID"]] = shard_id

    round1 = generated(120, seed=12)
    put(round1)
    first = RecordingProducer()
    asyncio.run(
        run_until(
            make_bridge(stream, sqlite_store, first), lambda: len(first.sent) >= len(round1), "1"
        )
    )
    # While the bridge is down: more records in the parents, then shard 0 is split and 1
    # and 2 are merged, and more records arrive (in the children).
    round2 = generated(120, seed=13, first_id=100_000)
    put(round2)
    low, high = fake.split("shardId-000000000000")
    merged = fake.merge("shardId-000000000001", "shardId-000000000002")
    round3 = generated(100, seed=14, first_id=200_000)
    put(round3)
    round4 = generated(60, seed=15, first_id=300_000)
    second = RecordingProducer()
    # Small batches: the parents' backlog takes a while, and the children must wait for it.
    bridge = make_bridge(stream, sqlite_store, second, max_records=7)

    async def restarted() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(bridge.run(stop))
        await async_wait_until(lambda: len(second.sent) >= len(round2) // 2, 20, "2", task)
        fake.split(merged)  # mid-run: the merge child is split in turn
        put(round4)
        total = len(round2) + len(round3) + len(round4)
        await async_wait_until(lambda: len(second.sent) >= total, 30, "4", task)
        stop.set()
        await task

    asyncio.run(restarted())
    later = round2 + round3 + round4
    ids = forwarded_ids(second)
    assert sorted(ids) == sorted(tx.transaction_id for tx in later), (
        "each record once: round 1 not read again"
    )
    put_order: dict[str, list[str]] = defaultdict(list)
    for tx in later:
        put_order[tx.card].append(tx.transaction_id)
    sent_order: dict[str, list[str]] = defaultdict(list)
    for _, value in second.on(TRANSACTIONS_TOPIC):
        record = CODEC.decode(value)
        sent_order[record["card"]].append(record["transaction_id"])
    assert sent_order == put_order, "cards keep their order across splits and merges"
    position = {tx_id: i for i, tx_id in enumerate(ids)}
    for child in fake.shards.values():
        mine = [position[t] for t, s in where.items() if s == child.shard_id and t in position]
        for parent in child.parents:
            theirs = [position[t] for t, s in where.items() if s == parent and t in position]
            if mine and theirs:
                assert max(theirs) < min(mine), (parent, child.shard_id)

    rows = sqlite_store.kinesis_checkpoints("handoff")
    closed = {s for s, shard in fake.shards.items() if shard.closed}
    assert {s for s, row in rows.items() if row["finished"]} == closed
    for shard in fake.shards.values():  # each read to its last record, checkpointed there
        if shard.records:
            assert rows[shard.shard_id]["sequence_number"] == shard.records[-1]["SequenceNumber"]
    assert {low, high} <= set(fake.shards) and merged in closed

    # A third run: nothing new to forward, and no finished shard is even opened.
    fake_calls: list[str] = []
    original = fake.get_shard_iterator

    def counting(**kwargs):
        fake_calls.append(kwargs["ShardId"])
        return original(**kwargs)

    fake.get_shard_iterator = counting  # the test's own double, not a library class
    third = RecordingProducer()
    asyncio.run(run_for(make_bridge(stream, sqlite_store, third), 1.0))
    assert third.sent == []
    assert set(fake_calls) == set(fake.shards) - closed


def test_throttling_and_expired_iterators_are_waited_out_without_duplicates(sqlite_store):
    fake = FakeKinesis("throttled", shard_count=2)
    stream = KinesisStream("throttled", client=fake)
    first = generated(40, seed=16)
    for key, data in as_records(first):
        fake.put(key, data)
    producer = RecordingProducer()
    bridge = make_bridge(stream, sqlite_store, producer, max_records=10)
    fake.failures = {
        "GetShardIterator": ["ProvisionedThroughputExceededException"],
        "GetRecords": [
            "ProvisionedThroughputExceededException",
            "ExpiredIteratorException",
            "LimitExceededException",
            "ExpiredIteratorException",
        ],
        "ListShards": ["LimitExceededException"],
    }
    asyncio.run(run_until(bridge, lambda: len(producer.sent) >= len(first), "all", 30))
    assert not any(fake.failures.values()), "every failure was met"
    assert sorted(forwarded_ids(producer)) == sorted(tx.transaction_id for tx in first)


def test_an_aws_refusal_ends_the_bridge_with_its_cause(sqlite_store):
    fake = FakeKinesis("refused", shard_count=1)
    fake.put("1", b"{}")
    fake.failures = {"GetRecords": ["AccessDeniedException"]}
    bridge = make_bridge(KinesisStream("refused", client=fake), sqlite_store, RecordingProducer())
    with pytest.raises(IngestError, match="AWS refused GetRecords on stream 'refused'"):
        asyncio.run(asyncio.wait_for(bridge.run(asyncio.Event()), 30))
