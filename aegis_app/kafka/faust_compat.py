"""Fixes to Faust (faust-streaming 0.15.3) that Aegis's delivery guarantees depend on:

1. the changelog "highwater" from a broker whose ListOffsets lies (failover);
2. no ack for a message Faust skipped unprocessed during a rebalance;
3. no stream message from a stale fetch position after a rebalance (its own module,
   ``aegis_app.kafka.seek_gate``);
4. partitions Faust holds back (paused) are not fetched, so they cannot stall the fetches
   of the others.

Each is a mixin, composed into Aegis's own Faust consumer classes in
aegis_app/kafka/faust_ext.py (used by ``AegisApp`` only; a plain ``faust.App`` is unaffected).

First fix: the changelog highwater
------------------------------------
Faust (faust-streaming 0.15.3, aiokafka driver) learns where a changelog partition ends
with ListOffsets(LATEST) (``AIOKafkaConsumer.end_offsets``). The embedded Tansu broker
answers that with *the base offset of the last record batch + 1*, not the offset after the
last record (a 10-record batch at 0-9 reports 1). A Fetch response's high watermark is
right. With a too-low end offset, table recovery on the worker that takes over a partition
either

- stops reading the changelog before its end (state silently misses the last batch), or
- refuses to start: the offset it already persisted (as a standby replica, or before it was
  restarted) is above the "highwater" -> ``ConsistencyError`` and the worker crashes.

That is the failover failure of issue 8 (docs/OPERATIONS.md, "Failover: what went wrong
and why").

What
----
:class:`TrueHighwaters` overrides ``AIOKafkaConsumerThread._highwaters`` (the one place
Faust asks for end offsets, used for active and standby recovery) so that each non-empty
partition's end offset is the larger of the ListOffsets answer and the high watermark of a
Fetch sent to the partition's leader on the consumer's own connection (same credentials,
same broker). On a correct broker (Apache Kafka) both are equal, so the result is
unchanged; the cost is one small Fetch per recovery, not per message. Any failure of the
extra Fetch falls back to Faust's own answer. Transactional mode (``last_stable_offset``)
is left alone.

Remove this first fix when Tansu answers ListOffsets(LATEST) with the log end offset.

Second fix: no ack for a message Faust skipped unprocessed
-----------------------------------------------------------
After a rebalance, a stream still holds messages fetched in the previous consumer
generation (or reads one while flow control is paused). Faust's stream skips such a message
without processing it, but acks it (``Stream._py_aiter``: "ack the filtered out message,
otherwise the lag would increase"). The ack lets the next commit move the partition's
offset past it, and since the partition is read again from the committed offset after the
rebalance, the message is never processed: a transaction without a decision. Seen in the
chaos test: a contiguous block of 13-25 transactions lost on the survivor's own partitions
when a killed worker rejoined. :class:`StaleAckGuard` overrides ``Consumer.ack`` to refuse
the ack of a message that was skipped that way (never tracked, and from an older
generation or seen while flow control was paused); it is fetched again after the rebalance
and processed then. Acks of processed (tracked) messages pass untouched, so Faust's wait
for in-flight messages during a rebalance is not affected.

Fourth fix: paused partitions stall the others' fetches
--------------------------------------------------------
Faust pauses a partition (``Consumer.pause_partitions``: a table's changelog once it is
recovered, a stream's during a rebalance) only by leaving it out of the partitions it asks
aiokafka's Fetcher for records of; aiokafka goes on fetching it. A paused changelog
partition that gets a record (the worker's own writes) then holds a fetched result nobody
takes, and aiokafka sends no fetch to that broker while an untaken result is younger than
its prefetch backoff (100 ms): in the first 0.4 s of a worker, its transactions came in
every ~100 ms, 20 at a time (BENCHMARKS.md, 2026-12-05). :class:`PausedNotFetched` (on the
consumer thread, before each of Faust's fetches) pauses in aiokafka what Faust leaves out
and resumes what it asks for again, with aiokafka's public ``pause`` and ``resume``.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from faust.app.router import Router

log = logging.getLogger(__name__)


async def true_end_offsets(client, reported: Mapping) -> dict:
    """``reported`` end offsets raised to the leader's Fetch high watermark where higher.

    ``client`` is an ``aiokafka.AIOKafkaClient`` (``AIOKafkaConsumer._client``); keys are
    ``TopicPartition``-like (``.topic``, ``.partition``). Partitions reported empty (0 or
    None) are left as they are: a non-empty partition always reports at least 1.
    """
    from aiokafka.errors import for_code
    from aiokafka.protocol.fetch import FetchRequest

    result = dict(reported)
    by_node: dict[int, dict[str, list[tuple[int, int, int]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for tp, end in reported.items():
        if not end:
            continue
        leader = client.cluster.leader_for_partition(tp)
        if leader is None or leader < 0:
            continue
        # Fetch at the reported end - 1: on Tansu the base of the last batch, on Kafka the
        # last record; both are valid offsets, so the answer carries the high watermark.
        by_node[leader][tp.topic].append((tp.partition, end - 1, 1))
    for node_id, topics in by_node.items():
        # max_wait 100 ms, min_bytes 1: Tansu answers a zero-wait Fetch with no partitions.
        # Every offset asked for is below the end, so the answer comes at once.
        request = FetchRequest(100, 1, 1, 0, [(t, parts) for t, parts in topics.items()])
        response = await client.send(node_id, request)
        for topic, partitions in response.topics:
            for partition, error_code, highwater, *_ in partitions:
                if error_code != 0:
                    log.debug("fetch for %s/%s: %s", topic, partition, for_code(error_code))
                    continue
                for tp in reported:
                    if tp.topic == topic and tp.partition == partition:
                        if highwater is not None and highwater > (result[tp] or 0):
                            log.info(
                                "end offset of %s/%s: ListOffsets said %s, fetch high "
                                "watermark %s; using %s",
                                topic,
                                partition,
                                result[tp],
                                highwater,
                                highwater,
                            )
                            result[tp] = highwater
    return result


def skipped_unprocessed(message, generation_id: int | None, flow_active: bool) -> bool:
    """True for the ack Faust's stream gives a message it skipped without processing it:
    the message was never tracked (tracking comes right after the skip test), and it is from
    an older consumer generation or arrived while flow control was paused (a rebalance)."""
    if getattr(message, "tracked", True):
        return False  # processed (or processing): its ack is a real one
    fetched_in = getattr(message, "generation_id", None)
    stale = fetched_in is not None and generation_id is not None and fetched_in != generation_id
    return stale or not flow_active


class StaleAckGuard:
    """Mixin for a Faust ``Consumer``: refuses the ack of a message Faust's stream skipped
    unprocessed during a rebalance (second fix above), counted in `refused_stale_acks`."""

    app: Any
    refused_stale_acks: int

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.refused_stale_acks = 0  # shown in the worker's /health/ counts
        super().__init__(*args, **kwargs)

    def ack(self, message: Any) -> bool:
        app = self.app
        if skipped_unprocessed(message, app.consumer_generation_id, app.flow_control.is_active()):
            self.refused_stale_acks += 1
            return False
        return super().ack(message)


class PausedNotFetched:
    """Mixin for Faust's ``AIOKafkaConsumerThread``: the partitions Faust does not ask
    records of are paused in aiokafka too (fourth fix above)."""

    async def _fetch_records(
        self,
        consumer: Any,
        active_partitions: Any,
        timeout: float | None = None,
        max_records: int | None = None,
    ) -> Any:
        if active_partitions is not None:
            pause_all_but(consumer, active_partitions)
        return await super()._fetch_records(  # type: ignore[misc]
            consumer, active_partitions, timeout=timeout, max_records=max_records
        )


def pause_all_but(consumer: Any, active: Any) -> None:
    """Pause the aiokafka `consumer`'s assigned partitions not in `active`, resume those in
    it (TopicPartition-like tuples compare equal across Faust's and aiokafka's types)."""
    assigned, paused = consumer.assignment(), consumer.paused()
    to_pause = [tp for tp in assigned if tp not in active and tp not in paused]
    to_resume = [tp for tp in paused if tp in active]
    if to_pause:
        consumer.pause(*to_pause)
    if to_resume:
        consumer.resume(*to_resume)


class TrueHighwaters:
    """Mixin for Faust's ``AIOKafkaConsumerThread``: changelog end offsets raised to the
    leader's Fetch high watermark (first fix above)."""

    consumer: Any

    async def _highwaters(self, partitions: list) -> Mapping:
        reported = await super()._highwaters(partitions)
        if self.consumer.in_transaction:
            return reported
        try:
            return await true_end_offsets(self._ensure_consumer()._client, reported)
        except Exception as exc:  # noqa: BLE001 - never make recovery worse than Faust's own
            log.warning("faust_compat: end-offset check failed (%r); using ListOffsets", exc)
            return reported


# --------------------------------------------------------------------------- web routing


class SourceKeyRouter(Router):
    """``app.router`` that finds a table key's partition the way the input was partitioned.

    Faust's ``table_route`` hashes the key *as the changelog serializes it*; a table with
    ``key_type=str`` serializes with JSON, so card ``"1384"`` is hashed as the 6 bytes
    ``"1384"`` (quotes included). But the table's rows live in the partition of the *input*
    message, keyed by the bare bytes ``1384`` (changelog records are sent to the source
    partition explicitly). The two hashes disagree for most keys, so a web request was
    forwarded to whichever worker owns the wrong partition, and answered from that worker's
    standby copy (up to a standby buffer behind) or not at all. Aegis keys every table by the
    text of its input key (card id, terminal id), so the raw UTF-8 bytes are the right key.
    """

    @classmethod
    def _get_serialized_key(cls, table, key) -> bytes:
        if isinstance(key, str):
            return key.encode("utf-8")
        if isinstance(key, bytes):
            return key
        return super()._get_serialized_key(table, key)
