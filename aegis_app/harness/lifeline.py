"""Child processes that stop when the process that started them dies.

`make demo` starts a broker, a worker, the API, the analyst page, a retrainer and a replay,
each in its own session (so that stopping one stops everything it started). Its own
shutdown stops them all; if it is killed outright (SIGKILL, or a closed terminal), Linux's
parent-death signal (prctl PR_SET_PDEATHSIG) still sends each of them SIGTERM.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def stop_with_parent_hook() -> Callable[[], None] | None:
    """A `preexec_fn` for subprocess.Popen that asks for SIGTERM when the parent dies (the
    thread that starts the child: start it from the main thread), or None where the
    platform has no such signal."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork
    parent = os.getpid()

    def hook() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the signal was asked for
            os._exit(1)

    return hook
