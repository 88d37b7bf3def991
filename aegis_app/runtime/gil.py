"""The interpreter's thread switch interval, for processes that hand work to a scoring thread.

Why: the worker and the API score micro-batches in a thread, off the event loop. Under
load both threads want the GIL, and CPython lets the holder keep it for the switch
interval (5 ms by default) before the waiter gets it, so each hand-off can add up to 5 ms
to a transaction's latency. Measured on this project's machine (BENCHMARKS.md):
`aegis bench --rate 1000` p99 930 ms before, 344 and 535 ms in two runs with 0.5 ms.
"""

from __future__ import annotations

import sys


def set_switch_interval(milliseconds: float) -> None:
    """Hand the GIL over after this long (0 or less: keep the interpreter's default)."""
    if milliseconds > 0:
        sys.setswitchinterval(milliseconds / 1000)
