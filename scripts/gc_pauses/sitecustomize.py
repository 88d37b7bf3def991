"""Log the garbage collector's pauses of every Python process started with this on the path.

    PYTHONPATH=scripts/gc_pauses AEGIS_GC_LOG_DIR=/tmp/gc scripts/api_bench.sh 200

Python imports ``sitecustomize`` at start-up, so each process (worker, API, sink, load
generator) appends to ``$AEGIS_GC_LOG_DIR/gc-<pid>-<program>.log`` one line per collection
of the oldest generation and per younger one that took 2 ms or more:
``<unix time> gen<N> <ms>ms collected=<objects>``. A measuring aid, not part of Aegis.
"""

import gc
import os
import sys
import time

_directory = os.environ.get("AEGIS_GC_LOG_DIR")
if _directory and sys.argv[:1] != ["-c"]:  # not the bench's one-line helpers
    os.makedirs(_directory, exist_ok=True)
    # "aegis-worker", "aegis-api", "api_load.py", ...
    _program = "-".join(os.path.basename(a) for a in sys.argv[:2] if a) or "python"
    _log = open(  # noqa: SIM115 - open for the life of the process
        os.path.join(_directory, f"gc-{os.getpid()}-{_program}.log"), "a", buffering=1
    )
    _started = [0.0]

    def _on_collection(phase: str, info: dict) -> None:
        if phase == "start":
            _started[0] = time.perf_counter()
            return
        ms = 1000 * (time.perf_counter() - _started[0])
        if info["generation"] == 2 or ms >= 2:
            _log.write(
                f"{time.time():.3f} gen{info['generation']} {ms:.1f}ms "
                f"collected={info['collected']}\n"
            )

    gc.callbacks.append(_on_collection)
