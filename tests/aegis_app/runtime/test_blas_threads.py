from __future__ import annotations

import os
import subprocess
import sys

# Each case runs in a fresh interpreter: the limit is process-wide and there is no undo.
PROBE = """
import sys
import numpy
from aegis_app.runtime import blas_threads
if sys.argv[1] != "untouched":
    blas_threads.limit(int(sys.argv[1]))
print(",".join(map(str, blas_threads.blas_threads())))
"""


def _blas_threads_after(limit: str) -> list[int]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, limit], capture_output=True, text=True, check=True, env=env
    ).stdout.strip()
    return [int(n) for n in out.split(",") if n]


def test_limit_sets_every_loaded_blas_to_that_many_threads():
    limited = _blas_threads_after("1")
    assert limited, "NumPy loaded no BLAS library that threadpoolctl can see"
    assert limited == [1] * len(limited)


def test_zero_leaves_the_library_default():
    assert _blas_threads_after("0") == _blas_threads_after("untouched")
