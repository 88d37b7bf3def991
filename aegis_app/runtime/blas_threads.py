"""Few BLAS threads in the processes that score in-stream (worker, API).

Why: the One-Class SVM's scoring is two small matrix products per micro-batch (a few dozen
rows by a few hundred Nystroem components). OpenBLAS splits even those over every core,
and its helper threads then spin while they wait for the next product, on cores the
broker, the worker and the API share. Measured with `scripts/api_bench.sh` at 200
requests/s and 200-ms fetch intervals (transactions arriving in bursts): the worker used
45-72 % of a core with the library's default, 28-30 % with one BLAS thread
(BENCHMARKS.md, 2026-12-03, second session). Training (`aegis train`, `aegis retrain`)
keeps the libraries' defaults: its products are large enough to be worth splitting.
"""

from __future__ import annotations

from threadpoolctl import threadpool_info, threadpool_limits


def limit(threads: int) -> None:
    """At most `threads` BLAS threads for every BLAS library loaded now (0: leave them).

    Call once the scoring code is imported: a library loaded later is not limited.
    """
    if threads > 0:
        threadpool_limits(limits=threads, user_api="blas")


def blas_threads() -> list[int]:
    """The thread count of each BLAS library loaded in this process."""
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
