"""The one process set-up of the worker, the API and the sink.

Called once a process has imported and built everything it needs, just before it starts
serving: the GIL switch interval and the BLAS thread limit matter only where transactions
are scored in-process (worker, API), the frozen start-up heap and rarer young-generation
collections everywhere (see gil.py, blas_threads.py and heap.py for the measurements
behind each).
"""

from __future__ import annotations

from aegis_app.core.settings import Settings
from aegis_app.runtime import blas_threads, gil, heap


def tune_process(settings: Settings, *, scoring: bool) -> None:
    """Tune this process; `scoring`: it runs the models in-process."""
    if scoring:
        gil.set_switch_interval(settings.thread_switch_interval_ms)
        # After the models are imported: a BLAS library loaded later is not limited.
        blas_threads.limit(settings.scoring_blas_threads)
    heap.freeze_startup_heap()  # everything is imported: spare it the full GC passes
    heap.set_young_threshold(settings.gc_young_threshold)
