"""The Faust patches that keep a rebalance from losing messages: no ack for a message
Faust skipped unprocessed, and no read-offset guesses (gaps, drops) on stream topics."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from types import SimpleNamespace

from faust.types import TP

from aegis_app import faust_compat
from aegis_app.faust_compat import skipped_unprocessed


def message(tracked: bool, generation_id: int | None) -> SimpleNamespace:
    return SimpleNamespace(tracked=tracked, generation_id=generation_id)


def test_only_untracked_messages_from_a_rebalance_lose_their_ack():
    # fetched before the latest rebalance and skipped by the stream: no ack
    assert skipped_unprocessed(message(False, 3), generation_id=4, flow_active=True)
    # read while flow control is paused (a rebalance in progress): no ack
    assert skipped_unprocessed(message(False, 4), generation_id=4, flow_active=False)
    # processed messages keep their ack, whenever it comes (Faust waits for them)
    assert not skipped_unprocessed(message(True, 3), generation_id=4, flow_active=False)
    # an untracked message of the current generation, flow running: a normal ack
    assert not skipped_unprocessed(message(False, 4), generation_id=4, flow_active=True)


def test_the_guard_wraps_faust_consumer_ack():
    from faust.transport.consumer import Consumer

    assert faust_compat.install()
    assert getattr(Consumer.ack, "__wrapped__", None) is not None
    app = SimpleNamespace(
        consumer_generation_id=2, flow_control=SimpleNamespace(is_active=lambda: True)
    )
    before = faust_compat.refused_stale_acks
    # refused before Faust's own bookkeeping is touched (the fake consumer has none)
    assert Consumer.ack(SimpleNamespace(app=app), message(False, 1)) is False
    assert faust_compat.refused_stale_acks == before + 1


# --- the read-offset race behind the fast-rejoin loss (faust_compat "Third patch") ---

STREAM = "aegis.transactions"
STREAM_TP = TP(STREAM, 0)


class FetchLoopHarness:
    """Just enough of a Faust consumer to run Faust's own fetch loop
    (``Consumer._drain_messages``) over scripted fetches. A script item is a message offset
    for the stream partition, or a callable run at that point (a seek)."""

    def __init__(self, read_offsets, script: list) -> None:
        self._read_offset = read_offsets
        self._script = script
        self.delivered: list[int] = []
        self.gaps: list[tuple[int, int]] = []
        self._commit_every = None
        self._n_acked = 0
        self.should_stop = False
        self.consumer_stopped_errors = ()
        self.dropped: list[int] = []  # Faust logs a drop with log.dev("DROPPED ...", offset)
        self.log = SimpleNamespace(
            dev=lambda msg, offset, *args: self.dropped.append(offset),
            info=logging.info,
            exception=logging.exception,
        )
        self.app = SimpleNamespace(topics=SimpleNamespace(acks_enabled_for=lambda t: t == STREAM))
        self.diag = SimpleNamespace(set_flag=lambda flag: None, unset_flag=lambda flag: None)
        self.suspend_flow = asyncio.Event()
        self._stopped = asyncio.Event()

    async def getmany(self, timeout: float):
        if not self._script:
            self._stopped.set()  # script done: end the loop
            return
        batch, self._script = self._script[0], self._script[1:]
        for item in batch:
            if callable(item):
                item()
            else:
                yield STREAM_TP, SimpleNamespace(topic=STREAM, offset=item, key=b"", value=b"")

    async def callback(self, message) -> None:
        self.delivered.append(message.offset)

    async def _add_gap(self, tp, offset_from: int, offset_to: int) -> None:
        self.gaps.append((offset_from, offset_to))

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)

    async def wait_first(self, delivery, suspended) -> None:
        suspended.close()
        await delivery

    def run(self) -> FetchLoopHarness:
        from faust.transport.consumer import Consumer

        asyncio.run(Consumer._drain_messages(self, SimpleNamespace(_stopped=asyncio.Event())))
        return self


def seek_race_script(read_offsets) -> list:
    """What the surviving worker's log showed after a rebalance: a batch is being handed
    out when perform_seek resets the read offset to the committed offset (254), the batch
    goes on (261), then the partition is fetched again from the committed offset."""

    def perform_seek() -> None:
        read_offsets.update({STREAM_TP: 254})

    first = [*range(250, 261), perform_seek, 261]
    again = list(range(255, 266))
    return [first, again]


def run_race(read_offsets) -> FetchLoopHarness:
    return FetchLoopHarness(read_offsets, seek_race_script(read_offsets)).run()


def test_faust_alone_records_a_gap_and_drops_messages_in_the_seek_race():
    """The hazard itself, in Faust's unpatched bookkeeping: offsets 255-260 are recorded as
    a gap (counted as acknowledged at the next commit whether processed or not) and their
    re-fetch is dropped."""
    harness = run_race(defaultdict(lambda: None))
    assert harness.gaps == [(255, 261)]
    assert harness.dropped == list(range(255, 261))  # re-fetched, taken as "already read"


def test_stream_read_offsets_deliver_everything_and_record_no_gap():
    offsets = faust_compat.StreamReadOffsets(lambda topic: topic == STREAM)
    harness = run_race(offsets)
    assert harness.gaps == [] and harness.dropped == []
    assert harness.delivered == [*range(250, 262), *range(255, 266)]


def test_stream_read_offsets_keep_changelog_offsets():
    offsets = faust_compat.StreamReadOffsets(lambda topic: topic == STREAM)
    changelog = TP("aegis-card_state-changelog", 1)
    stream = TP(STREAM, 1)
    offsets.update({changelog: 306, stream: 254})
    assert offsets[changelog] == 306
    assert offsets[stream] is None
    assert offsets[TP("other", 0)] is None  # unknown: None


def test_install_gives_every_faust_consumer_stream_read_offsets():
    from faust.transport.consumer import Consumer

    assert faust_compat.install()
    assert getattr(Consumer.__init__, "__wrapped__", None) is not None
