"""Failover on the real embedded broker: two workers share the partitions, the web view
routes a card's request to the worker that owns it, then one worker is SIGKILLed mid-stream
and the survivor takes over every partition within seconds (with the default settings:
AEGIS_SESSION_TIMEOUT_S and AEGIS_HEARTBEAT_INTERVAL_S, docs/OPERATIONS.md "Failover"),
recovers the state from the changelogs, and decides every transaction with the same
features as the batch computation.

Before aegis_app/faust_compat.py the survivor crashed here with ConsistencyError: Tansu's
ListOffsets(LATEST) is too low, so Faust's changelog highwater was below the offset the
survivor had already read as a standby replica (docs/OPERATIONS.md)."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from aegis_app.harness import chaos
from aegis_app.kafka.admin import ensure_topics
from aegis_app.kafka.faust_compat import true_end_offsets

pytestmark = pytest.mark.integration

TRANSACTIONS = 2400
RATE = 200
# Seconds from the SIGKILL until the survivor decides a transaction of each of the dead
# worker's partitions sent after the kill (measured ~7 s: BENCHMARKS.md "Failover").
TAKEOVER_BOUND_S = 10.0


@pytest.fixture(scope="session")
def chaos_model_dir(tmp_path_factory):
    """One small trained model for the failover and chaos tests (trained once a session)."""
    model_dir = tmp_path_factory.getbasetemp() / "chaos-model"
    chaos.ensure_model(model_dir, customers=400, days=35)  # small: quick to train
    return model_dir


def test_true_end_offset_uses_the_fetch_high_watermark(broker):
    """The broker's ListOffsets(LATEST) is the last batch's base + 1; the shim fixes it."""
    topic = "failover-end-offsets"
    ensure_topics(broker.bootstrap, [topic], 2)

    async def scenario():
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=50)
        await producer.start()
        try:
            for batch in (10, 3):  # two batches on partition 0: offsets 0-9 and 10-12
                for _ in range(batch):
                    await producer.send(topic, b"x", partition=0)
                await producer.flush()
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None)
        await consumer.start()
        try:
            tps = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
            reported = await consumer.end_offsets(tps)
            return reported, await true_end_offsets(consumer._client, reported)
        finally:
            await consumer.stop()

    reported, fixed = asyncio.run(scenario())
    p0, p1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    assert fixed[p0] == 13  # the true end, whatever the broker's ListOffsets said
    assert reported[p0] <= 13
    assert fixed[p1] == reported[p1] == 0  # an empty partition is left alone


def test_survivor_takes_over_after_sigkill(tmp_path, chaos_model_dir):
    txs = chaos.chaos_transactions(TRANSACTIONS, seed=5)
    items = [("tx", tx) for tx in txs]
    half = len(items) // 2
    stack = chaos.ChaosStack(tmp_path, chaos_model_dir)  # the workers' default timeouts
    kills: list[chaos.Kill] = []
    try:
        stack.start_broker()
        stack.start_sharing(("w0", "w1"))  # one group, the partitions shared

        first = asyncio.run(chaos._stream(stack, items[:half], RATE, {}))
        ids = {tx.transaction_id for tx in first.transactions}
        chaos.wait_decided(stack.broker.url, ids, 90, stack.crashed)
        stack.wait_idle(timeout=20, quiet_s=2)
        # Web view: every card answers the same through either worker (table_route forwards
        # to the owner), and that answer is the batch state.
        routing = chaos.check_card_states(stack, first.transactions, sample=30)
        assert routing["routed_answers"] > 0, routing
        assert routing["mismatched"] == 0 and routing["unanswered"] == 0, routing

        # SIGKILL w1 a little into the second half, while transactions keep coming.
        second = asyncio.run(
            chaos._stream(
                stack,
                items[half:],
                RATE,
                {100: lambda: kills.append(chaos.kill_timed(stack, "w1"))},
            )
        )
        sent = chaos.Sent(transactions=first.transactions + second.transactions)
        expected = {tx.transaction_id for tx in sent.transactions}
        records = chaos.wait_decided(stack.broker.url, expected, 150, stack.crashed)
        stack.wait_idle(timeout=30, quiet_s=3)
        records = chaos.read_all(stack.broker.url, chaos.DECISIONS_TOPIC)

        deadline = time.monotonic() + 30
        while set(stack.owners().values()) != {"w0"} and time.monotonic() < deadline:
            time.sleep(0.5)
        assert stack.owners() == {p: "w0" for p in range(stack.partitions)}

        (kill,) = kills
        takeover = chaos.takeover_times(records, sent.transactions, kill, stack.partitions)
        assert kill.partitions and set(takeover) == set(kill.partitions), takeover
        assert all(s is not None and s <= TAKEOVER_BOUND_S for s in takeover.values()), (
            takeover,
            kill,
        )

        result = chaos.summarize(stack, sent, records, [], card_sample=60)
        assert stack.workers["w0"].alive, stack.workers["w0"].process.log_tail()
        assert result["workers_crashed"] == [] and result["crash_log_lines"] == {}, result
        assert result["lost"] == 0, result
        assert result["unexpected_decisions"] == 0
        assert result["conflicting_duplicates"] == 0, result
        assert result["feature_mismatches"] == 0, result["feature_mismatch_examples"]
        assert result["card_state"]["mismatched"] == 0, result["card_state"]
    finally:
        stack.close()
