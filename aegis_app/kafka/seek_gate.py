"""Patch to Faust (faust-streaming 0.15.3, aiokafka driver): no stream message from a stale
fetch position after a rebalance.

The loss it fixes (issue 8, docs/OPERATIONS.md "Loss on a fast rejoin")
------------------------------------------------------------------------
When a killed worker rejoins, the survivor keeps some of its input partitions through the
rebalance. Faust's recovery resumes those partitions and only *then* seeks them back to
their committed offsets (``Recovery.on_recovery_completed``: ``resume_partitions`` then
``await perform_seek()``). While that seek is in flight the fetcher can hand out records
fetched at the old position, and a batch fetched before the seek can still be iterated
after it. Either way Faust's fetch loop (``Consumer._drain_messages``) sees an offset far
above the read offset the seek just set, records the offsets in between as a "gap", counts
the gap as acknowledged, and drops the re-fetched copies as already read. The next commit
moves past them: a block of transactions that never gets a decision. Seen with Faust's
developer log: "Resuming flow..." before "Seek stream partitions to committed offsets",
then ``gap aegis.transactions/1 255..272`` with 254 committed.

What
----
A :class:`SeekGate` per consumer counts completed seeks to the committed offsets (the
*epoch*) and stamps each fetched batch with the epoch it was fetched in. A stream message
(any topic that is not a table changelog) is handed to Faust only if

- its batch was fetched after the rebalance's last seek (the one made once the stream
  partitions are resumed), and
- no seek has happened since its batch was fetched.

Everything else is dropped before Faust sees it, so it moves no read offset and records no
gap. Dropping is safe because each dropped record is re-fetched: a seek to the committed
offsets always follows (the rebalance has not made its last seek yet) or has already
followed (the batch is older than a seek). Changelog records are never dropped: table
recovery reads them by explicit position.

The epoch and the batch stamp are both taken on the consumer thread (where aiokafka moves
positions and returns records), so "fetched before or after the seek" is exact, not a race
between two event loops. Remove this patch with Faust once recovery seeks before it
resumes the stream partitions.
"""

from __future__ import annotations

import logging
import math

log = logging.getLogger(__name__)

_INSTALLED = False


class SeekGate:
    """Which fetched batches may reach Faust's streams; see the module docstring."""

    def __init__(self) -> None:
        self.epoch = 0  # seeks to committed offsets completed so far
        # Stream messages pass only from batches fetched at or after this epoch: the
        # epoch of the last seek of the latest rebalance. Closed (inf) until it happens.
        self.open_at: float = math.inf
        # The rebalance (app.rebalancing_count) whose last seek is in flight, if any.
        self._final_seek_for: int | None = None
        self.dropped = 0
        # The epoch the batch Faust's fetch loop is iterating was fetched in.
        self.batch_epoch: int | None = None

    def rebalance_started(self) -> None:
        self.open_at = math.inf
        self._final_seek_for = None

    def final_seek_requested(self, rebalance: int) -> None:
        """The next completed seek is the one after which the streams may flow."""
        self._final_seek_for = rebalance

    def seek_completed(self, rebalance: int) -> None:
        """Called on the consumer thread right after positions moved to committed offsets."""
        self.epoch += 1
        if self._final_seek_for is not None and self._final_seek_for == rebalance:
            self.open_at = self.epoch
        self._final_seek_for = None

    def admits(self, fetched_in: int | None) -> bool:
        """May a stream message of a batch fetched in epoch ``fetched_in`` be processed?"""
        if fetched_in is None:  # not stamped (another driver): leave Faust as it is
            return True
        return self.open_at <= fetched_in == self.epoch


class StampedRecords(dict):
    """A fetched record map that remembers the seek epoch it was fetched in."""

    seek_epoch: int | None = None


def gate_of(consumer) -> SeekGate:
    gate = getattr(consumer, "_aegis_seek_gate", None)
    if gate is None:
        gate = consumer._aegis_seek_gate = SeekGate()
    return gate


async def seek_all_to_committed(kafka_consumer, is_changelog) -> dict:
    """Move every assigned partition of an ``aiokafka.AIOKafkaConsumer`` to its committed
    offset in one step; returns the committed offsets (None where nothing is committed).

    aiokafka's own ``seek_to_committed`` looks up and moves one partition at a time, with an
    await in between, so a batch fetched meanwhile mixes moved and unmoved partitions. Here
    every lookup comes first and every move after, with no await in between.
    """
    partitions = kafka_consumer.assignment()
    committed = {tp: await kafka_consumer.committed(tp) for tp in partitions}
    for tp, offset in committed.items():
        if offset is not None and offset > 0:
            kafka_consumer.seek(tp, offset)
        elif not is_changelog(tp):
            # Nothing committed yet: read from the start, as auto_offset_reset "earliest"
            # does, so that a dropped stale record is read again. (Changelogs are never
            # committed; table recovery positions them itself.)
            kafka_consumer.seek(tp, 0)
    return committed


def _streams_resumed(consumer) -> bool:
    active = consumer._active_partitions or ()
    return any(not consumer._is_changelog_tp(tp) for tp in active)


def install() -> bool:
    """Patch Faust's consumer and its aiokafka thread once; True if the patch is active."""
    global _INSTALLED
    if _INSTALLED:
        return True
    from faust.transport.consumer import Consumer
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    needed = [
        (Consumer, "getmany"),
        (Consumer, "_wait_next_records"),
        (Consumer, "perform_seek"),
        (Consumer, "on_partitions_revoked"),
        (Consumer, "on_partitions_assigned"),
        (AIOKafkaConsumerThread, "seek_to_committed"),
        (AIOKafkaConsumerThread, "_fetch_records"),
    ]
    missing = [f"{cls.__name__}.{name}" for cls, name in needed if not hasattr(cls, name)]
    if missing:
        log.warning("seek_gate: %s not found; not patched", ", ".join(missing))
        return False
    _patch_consumer(Consumer)
    _patch_thread(AIOKafkaConsumerThread)
    _INSTALLED = True
    return True


def _patch_consumer(Consumer) -> None:
    on_revoked = Consumer.on_partitions_revoked
    on_assigned = Consumer.on_partitions_assigned
    perform_seek = Consumer.perform_seek
    wait_next_records = Consumer._wait_next_records
    getmany = Consumer.getmany

    async def on_partitions_revoked(self, revoked):
        gate_of(self).rebalance_started()
        return await on_revoked(self, revoked)

    async def on_partitions_assigned(self, assigned, generation_id: int = 0):
        gate_of(self).rebalance_started()
        return await on_assigned(self, assigned, generation_id)

    async def perform_seek_(self):
        # Recovery resumes the stream partitions just before its last seek; a seek made
        # while they are still paused (or with none assigned) does not open the gate.
        if _streams_resumed(self):
            gate_of(self).final_seek_requested(self.app.rebalancing_count)
        return await perform_seek(self)

    async def _wait_next_records(self, timeout):
        records, active_partitions = await wait_next_records(self, timeout)
        gate_of(self).batch_epoch = getattr(records, "seek_epoch", None)
        return records, active_partitions

    async def getmany_(self, timeout):
        gate = gate_of(self)
        dropped: dict = {}  # tp -> [first, last, count] of this batch's dropped offsets
        try:
            async for tp, message in getmany(self, timeout):
                # admits() first: it is cheap, and Faust builds a new set of changelog
                # topics on every _is_changelog_tp call.
                if gate.admits(gate.batch_epoch) or self._is_changelog_tp(tp):
                    yield tp, message
                    continue
                gate.dropped += 1
                span = dropped.setdefault(tp, [message.offset, message.offset, 0])
                span[1] = message.offset
                span[2] += 1
        finally:
            for tp, (first, last, count) in dropped.items():
                log.info(
                    "seek_gate: dropped %d records of %s/%s (%d..%d) fetched in seek %s "
                    "(now %d, streams open from %s); read again from the committed offset",
                    count,
                    tp.topic,
                    tp.partition,
                    first,
                    last,
                    gate.batch_epoch,
                    gate.epoch,
                    gate.open_at,
                )

    for name, new, old in [
        ("on_partitions_revoked", on_partitions_revoked, on_revoked),
        ("on_partitions_assigned", on_partitions_assigned, on_assigned),
        ("perform_seek", perform_seek_, perform_seek),
        ("_wait_next_records", _wait_next_records, wait_next_records),
        ("getmany", getmany_, getmany),
    ]:
        new.__wrapped__ = old  # type: ignore[attr-defined]
        new.__name__ = name
        setattr(Consumer, name, new)


def _patch_thread(AIOKafkaConsumerThread) -> None:
    seek_to_committed = AIOKafkaConsumerThread.seek_to_committed
    fetch_records = AIOKafkaConsumerThread._fetch_records

    async def seek_to_committed_(self):
        consumer = self.consumer  # Faust's Consumer (main loop); the gate lives there
        aiokafka_consumer = self._ensure_consumer()

        async def seek_and_count():  # runs on the consumer thread
            committed = await seek_all_to_committed(aiokafka_consumer, consumer._is_changelog_tp)
            gate = gate_of(consumer)
            gate.seek_completed(consumer.app.rebalancing_count)
            log.info(
                "seek_gate: seek %d to committed offsets %s; streams open from seek %s",
                gate.epoch,
                {f"{tp.topic}/{tp.partition}": o for tp, o in committed.items() if o},
                gate.open_at,
            )
            return committed

        return await self.call_thread(seek_and_count)

    async def _fetch_records(self, consumer, active_partitions, timeout=None, max_records=None):
        records = await fetch_records(
            self, consumer, active_partitions, timeout=timeout, max_records=max_records
        )
        # Same thread and no await since aiokafka checked the positions: exact epoch.
        stamped = StampedRecords(records)
        stamped.seek_epoch = gate_of(self.consumer).epoch
        return stamped

    seek_to_committed_.__wrapped__ = seek_to_committed  # type: ignore[attr-defined]
    _fetch_records.__wrapped__ = fetch_records  # type: ignore[attr-defined]
    AIOKafkaConsumerThread.seek_to_committed = seek_to_committed_
    AIOKafkaConsumerThread._fetch_records = _fetch_records
