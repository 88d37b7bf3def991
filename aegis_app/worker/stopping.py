"""A worker that stops within a deadline, even when the broker is gone.

Faust's worker stops on SIGTERM or SIGINT by stopping its services in turn: the consumer
commits its offsets, the producer flushes. With the broker unreachable both retry without
end, so a worker asked to stop kept running until it was killed (measured: still alive 60 s
after SIGTERM with the broker stopped). :class:`AegisWorker` gives that shutdown a
deadline; past it the process exits at once. Nothing is lost by it: what was not committed
is read again by whichever worker gets the partitions (at-least-once, the same as after a
SIGKILL, which the chaos suite exercises), and table writes are in RocksDB's log already.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

import faust

log = logging.getLogger(__name__)

# Seconds a stop may take before the process exits regardless (issue 20: within 15 s).
SHUTDOWN_DEADLINE_S = 10.0


class AegisWorker(faust.Worker):
    """``faust.Worker`` whose :meth:`stop` has a deadline (:data:`SHUTDOWN_DEADLINE_S`)."""

    shutdown_deadline_s: float = SHUTDOWN_DEADLINE_S

    async def stop(self) -> None:
        exit_after(self.shutdown_deadline_s)
        await super().stop()


def exit_after(seconds: float) -> threading.Timer:
    """Exit the process in `seconds` unless it has ended by then (a daemon timer thread)."""

    def give_up() -> None:
        log.warning(
            "the worker did not stop within %.0f s (is the broker reachable?): exiting now; "
            "uncommitted offsets are read again by the next owner of the partitions",
            seconds,
        )
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(0)  # a requested stop, forced: not an error

    timer = threading.Timer(seconds, give_up)
    timer.daemon = True
    timer.start()
    return timer
