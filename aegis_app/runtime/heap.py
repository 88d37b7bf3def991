"""Keep the garbage collector off what a process loaded at start, and out of its way.

Why: a worker starts with some 160,000 long-lived objects from Faust, scikit-learn, NumPy
and Aegis itself, and CPython's oldest-generation collection walks all of them (and the
state made since) each time, mostly finding nothing to free. Measured under
`scripts/api_bench.sh` at 200 requests/s (scripts/gc_pauses): before, the worker paused
142-159 ms for such a pass about every 10 s and the sink 56-134 ms every 3-5 s; with the
start-up heap frozen, the worker made no full pass during the load and the sink's took
3-14 ms (BENCHMARKS.md, 2026-12-03). `gc.freeze()` moves what is alive once start-up is
done into a permanent generation the collector no longer scans; objects made later are
collected as before, and reference counting still frees frozen objects.

Young-generation passes: CPython collects the youngest generation every 700 net
allocations. A worker allocates a few dozen objects per transaction (records, feature and
decision dicts, messages, futures) that reference counting frees anyway, so at thousands of
transactions a second it ran hundreds of young passes a second. With 50,000 between passes
the worker spent 10-13 % less CPU per transaction flat out (three same-run pairs of `aegis
bench`, BENCHMARKS.md, 2026-12-05 third session); a young pass then looks at up to 50,000
objects, about a millisecond.
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> int:
    """Collect once, then exempt every object alive now from later collections.
    Returns how many objects were frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def set_young_threshold(allocations: int) -> None:
    """Collect the youngest generation every `allocations` net allocations (0 or less:
    keep the interpreter's threshold); the older generations' thresholds stay."""
    if allocations > 0:
        _, middle, oldest = gc.get_threshold()
        gc.set_threshold(allocations, middle, oldest)
