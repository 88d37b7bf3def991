"""Faust (faust-streaming 0.15.3, aiokafka driver) extended: no stream message from a stale
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
between two event loops.

How it is hooked in
-------------------
Two mixins, composed into Aegis's own Faust consumer classes (aegis_app/kafka/faust_ext.py,
used by ``AegisApp`` only; a plain ``faust.App`` is unaffected): :class:`SeekGatedConsumer`
(Faust's ``Consumer``: the gate, the rebalance and seek bookkeeping, the drop) and
:class:`SeekGatedConsumerThread` (``AIOKafkaConsumerThread``: the seek and the batch stamp).
Remove them with Faust once recovery seeks before it resumes the stream partitions.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)


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


async def seek_all_to_committed(kafka_consumer: Any, is_changelog: Callable[[Any], bool]) -> dict:
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


def streams_resumed(consumer: Any) -> bool:
    """Has Faust's recovery resumed any stream (non-changelog) partition of `consumer`?"""
    active = consumer._active_partitions or ()
    return any(not consumer._is_changelog_tp(tp) for tp in active)


class SeekGatedConsumer:
    """Mixin for a Faust ``Consumer`` (aiokafka driver): owns the :class:`SeekGate` and drops
    the stream messages it refuses. Pair it with :class:`SeekGatedConsumerThread`."""

    app: Any
    seek_gate: SeekGate

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Before Faust's __init__: it creates the consumer thread, which reads the gate.
        self.seek_gate = SeekGate()
        super().__init__(*args, **kwargs)

    async def on_partitions_revoked(self, revoked: set) -> None:
        self.seek_gate.rebalance_started()
        return await super().on_partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set, generation_id: int = 0) -> None:
        self.seek_gate.rebalance_started()
        return await super().on_partitions_assigned(assigned, generation_id)

    async def perform_seek(self) -> None:
        # Recovery resumes the stream partitions just before its last seek; a seek made
        # while they are still paused (or with none assigned) does not open the gate.
        if streams_resumed(self):
            self.seek_gate.final_seek_requested(self.app.rebalancing_count)
        return await super().perform_seek()

    async def _wait_next_records(self, timeout: float) -> tuple:
        records, active_partitions = await super()._wait_next_records(timeout)
        self.seek_gate.batch_epoch = getattr(records, "seek_epoch", None)
        return records, active_partitions

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[Any, Any]]:
        gate = self.seek_gate
        dropped: dict = {}  # tp -> [first, last, count] of this batch's dropped offsets
        try:
            async for tp, message in super().getmany(timeout):
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


class SeekGatedConsumerThread:
    """Mixin for Faust's ``AIOKafkaConsumerThread`` whose consumer is a
    :class:`SeekGatedConsumer`: seeks every partition in one step and counts the seek, and
    stamps each fetched batch with the seek epoch, both on the consumer thread."""

    consumer: Any

    async def seek_to_committed(self) -> Mapping:
        consumer = self.consumer  # Faust's Consumer (main loop); the gate lives there
        aiokafka_consumer = self._ensure_consumer()

        async def seek_and_count() -> dict:  # runs on the consumer thread
            committed = await seek_all_to_committed(aiokafka_consumer, consumer._is_changelog_tp)
            gate = consumer.seek_gate
            gate.seek_completed(consumer.app.rebalancing_count)
            log.info(
                "seek_gate: seek %d to committed offsets %s; streams open from seek %s",
                gate.epoch,
                {f"{tp.topic}/{tp.partition}": o for tp, o in committed.items() if o},
                gate.open_at,
            )
            return committed

        return await self.call_thread(seek_and_count)

    async def _fetch_records(
        self,
        consumer: Any,
        active_partitions: Any,
        timeout: float | None = None,
        max_records: int | None = None,
    ) -> StampedRecords:
        records = await super()._fetch_records(
            consumer, active_partitions, timeout=timeout, max_records=max_records
        )
        # Same thread and no await since aiokafka checked the positions: exact epoch.
        stamped = StampedRecords(records)
        stamped.seek_epoch = self.consumer.seek_gate.epoch
        return stamped
