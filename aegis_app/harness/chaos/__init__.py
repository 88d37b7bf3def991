"""`aegis chaos`: fault injection on the real embedded broker with real worker processes, and
`aegis chaos --soak`: a long fixed-rate stream that watches whether worker state stops growing.

While generated transactions stream in with poison records mixed in, the chaos run kills,
restarts, adds and removes workers and freezes the broker; then it checks, from the topics
(and the result store), that every valid transaction was decided exactly once with the
batch features, that every poison record was dead-lettered with a reason, that sampled cards'
table state equals the batch state, and that no worker crashed. One module per part:

- poison.py: the hostile records (POISON_KINDS, poison_records), each refused by the decoder
- data.py: the test data (transactions, soak frames, card partitions) and a loadable model
- stack.py: the processes (ChaosStack: broker, workers, sink; Worker; RSS and state sizes)
- streaming.py: publishing at a fixed rate and firing the faults on the way (Sent, interleave)
- checks.py: reading the topics back and comparing with the batch computation (summarize)
- fault_run.py: the fault-injection run (FAULTS, ChaosConfig, the schedule, run, verdict)
- soak_run.py: the soak run (SoakConfig, state_horizon_days, soak, soak_verdict)
- failover.py: how soon a SIGKILLed worker's partitions are decided again (kill_timed,
  takeover_times; measure, for scripts/failover_time.py)

The run modules are not called run.py and soak.py because the functions `run` and `soak`
re-exported here would hide them (`import aegis_app.harness.chaos.run` would give the
function).
"""

from __future__ import annotations

from aegis_app.core.settings import DECISIONS_TOPIC
from aegis_app.harness.chaos.checks import (
    batch_card_states,
    check_card_states,
    check_features,
    check_store,
    feature_family,
    read_all,
    read_all_async,
    summarize,
    wait_decided,
)
from aegis_app.harness.chaos.data import (
    card_partition,
    chaos_transactions,
    ensure_model,
    frame_of,
    soak_frame,
)
from aegis_app.harness.chaos.failover import Kill, kill_timed, takeover_times
from aegis_app.harness.chaos.fault_run import FAULTS, ChaosConfig, run, verdict
from aegis_app.harness.chaos.poison import POISON_KINDS, POISON_WEIGHTS, Poison, poison_records
from aegis_app.harness.chaos.soak_run import SoakConfig, soak, soak_verdict, state_horizon_days
from aegis_app.harness.chaos.stack import ChaosStack, Worker, dir_bytes, live_state, rss_bytes
from aegis_app.harness.chaos.streaming import Sent, _stream, interleave

# What callers use through `from aegis_app.harness import chaos`: the CLI (run, soak and their
# configs), tests/integration/test_chaos.py and test_failover.py (which drives `_stream`,
# times the takeover and reads DECISIONS_TOPIC through this package).
__all__ = [
    "DECISIONS_TOPIC",
    "FAULTS",
    "Kill",
    "POISON_KINDS",
    "POISON_WEIGHTS",
    "ChaosConfig",
    "ChaosStack",
    "Poison",
    "Sent",
    "SoakConfig",
    "Worker",
    "_stream",
    "batch_card_states",
    "card_partition",
    "chaos_transactions",
    "check_card_states",
    "check_features",
    "check_store",
    "dir_bytes",
    "ensure_model",
    "feature_family",
    "frame_of",
    "interleave",
    "kill_timed",
    "live_state",
    "poison_records",
    "read_all",
    "read_all_async",
    "rss_bytes",
    "run",
    "soak",
    "soak_frame",
    "soak_verdict",
    "state_horizon_days",
    "summarize",
    "takeover_times",
    "verdict",
    "wait_decided",
]
