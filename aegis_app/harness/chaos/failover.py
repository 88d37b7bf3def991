"""How long a SIGKILLed worker's partitions go undecided: the takeover time.

Two workers share the partitions of one consumer group; a steady stream goes on; one worker
is SIGKILLed. The takeover time of one of its aegis.transactions partitions is the time from
the SIGKILL to the first decision (the decision record's timestamp on aegis.decisions) of a
transaction of that partition *sent after the kill*: the dead worker never saw such a
transaction, so the survivor decided it. It includes noticing the death (the session
timeout), the rebalance, the survivor's table recovery and its working off the backlog
that piled up on those partitions meanwhile (which is why transactions sent before the kill
do not count: some of them were passed on by the dead worker before it died).

`kill_timed` and `takeover_times` are what tests/integration/test_failover.py asserts on;
`measure` is the whole benchmark (scripts/failover_time.py, BENCHMARKS.md "Failover").
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from aegis_app.core.settings import DECISIONS_TOPIC
from aegis_app.harness.chaos.checks import read_all, wait_decided
from aegis_app.harness.chaos.data import card_partition, chaos_transactions, ensure_model
from aegis_app.harness.chaos.stack import ChaosStack
from aegis_app.harness.chaos.streaming import _stream
from aegis_app.ingest.replay import Outgoing


@dataclass
class Kill:
    """A worker's SIGKILL: which input partitions it had, and when (wall clock, ms)."""

    worker: str
    partitions: list[int]
    at_ms: int = 0  # just before the signal
    dead_ms: int = 0  # once the process was gone (nothing it did is later than this)
    # Seconds from the kill until the survivors' /health/ showed every input partition
    # owned by them (the rebalance done); None if that was not seen.
    reassigned_s: float | None = None


def kill_timed(stack: ChaosStack, name: str, watch_s: float = 120.0) -> Kill:
    """SIGKILL worker `name`, noting its input partitions and the time; then watch the
    survivors' /health/ until they own every partition (at most `watch_s`)."""
    owners = stack.owners()
    kill = Kill(name, sorted(p for p, owner in owners.items() if owner == name))
    kill.at_ms = int(time.time() * 1000)
    stack.kill_worker(name)
    kill.dead_ms = int(time.time() * 1000)
    deadline = time.monotonic() + watch_s
    while time.monotonic() < deadline:
        owned = stack.owners()
        if len(owned) == stack.partitions and name not in owned.values():
            kill.reassigned_s = round(time.time() - kill.at_ms / 1000, 2)
            break
        time.sleep(0.25)
    return kill


def takeover_times(
    records: list, transactions: list[Outgoing], kill: Kill, partitions: int
) -> dict[int, float | None]:
    """Each of the killed worker's input partitions -> seconds from the kill to the first
    decision of one of its transactions sent after the kill (None: none decided)."""
    partition_of = {tx.transaction_id: card_partition(tx.card, partitions) for tx in transactions}
    first: dict[int, int] = {}
    for record in records:
        decision = json.loads(record.value)
        partition = partition_of.get(str(decision.get("transaction_id")))
        if partition not in kill.partitions:
            continue
        if (decision.get("ingested_ms") or 0) <= kill.dead_ms:
            continue  # sent before the kill: the dead worker may have handled part of it
        first[partition] = min(first.get(partition, record.timestamp), record.timestamp)
    return {
        p: (round((first[p] - kill.at_ms) / 1000, 2) if p in first else None)
        for p in kill.partitions
    }


def decided_per_second(
    records: list, transactions: list[Outgoing], kill: Kill, partitions: int, seconds: int = 20
) -> list[int]:
    """Decisions of the killed worker's partitions in each second after the kill (the
    first few: in flight when it died; then none until the takeover)."""
    partition_of = {tx.transaction_id: card_partition(tx.card, partitions) for tx in transactions}
    counts = [0] * seconds
    for record in records:
        second = int((record.timestamp - kill.at_ms) // 1000)
        key = record.key.decode() if record.key else ""
        if 0 <= second < seconds and partition_of.get(key) in kill.partitions:
            counts[second] += 1
    return counts


@dataclass
class FailoverConfig:
    rate: float = 100.0  # transactions a second
    before_kill_s: float = 15.0  # stream seconds before the SIGKILL
    after_kill_s: float = 100.0  # stream seconds after it (longer than the takeover)
    partitions: int = 4
    # None: the workers' own default (Settings); a number: `--rebalance-timeout`.
    rebalance_timeout: float | None = None
    worker_env: dict[str, str] = field(default_factory=dict)  # e.g. AEGIS_SESSION_TIMEOUT_S
    model_dir: Path | None = None
    root: Path | None = None
    seed: int = 0
    settle_timeout: float = 240.0
    keep: bool = False


def measure(config: FailoverConfig) -> dict:
    """Two workers, a steady stream, one SIGKILL: the takeover time and what it consisted of."""
    root = Path(config.root or tempfile.mkdtemp(prefix="aegis-failover-"))
    root.mkdir(parents=True, exist_ok=True)
    model_dir = Path(config.model_dir or root / "models")
    ensure_model(model_dir, customers=400, days=35)
    total = int(config.rate * (config.before_kill_s + config.after_kill_s))
    txs = chaos_transactions(total, config.seed)
    items = [("tx", tx) for tx in txs]
    stack = ChaosStack(
        root,
        model_dir,
        config.partitions,
        config.rebalance_timeout,
        worker_env=dict(config.worker_env),
    )
    started = time.monotonic()
    kills: list[Kill] = []
    lock = threading.Lock()

    def kill() -> None:
        done = kill_timed(stack, "w1")
        with lock:
            kills.append(done)

    try:
        stack.start_broker()
        owners = stack.start_sharing(("w0", "w1"))
        assigned_s = round(time.monotonic() - started, 1)
        at = min(len(items) - 1, int(config.rate * config.before_kill_s))
        sent = asyncio.run(_stream(stack, items, config.rate, {at: kill}))
        expected = {tx.transaction_id for tx in sent.transactions}
        wait_decided(stack.broker.url, expected, config.settle_timeout, stack.crashed)
        stack.wait_idle(timeout=30, quiet_s=3)
        records = read_all(stack.broker.url, DECISIONS_TOPIC)
        (done,) = kills
        times = takeover_times(records, sent.transactions, done, config.partitions)
        decided = {r.key.decode() for r in records if r.key}
        found = [t for t in times.values() if t is not None]
        per_second = decided_per_second(records, sent.transactions, done, config.partitions)
        return {
            "rate": config.rate,
            "rebalance_timeout": config.rebalance_timeout,
            "worker_env": config.worker_env,
            "startup_assigned_s": assigned_s,
            "owners_before_kill": {str(p): w for p, w in sorted(owners.items())},
            "killed": done.worker,
            "killed_partitions": done.partitions,
            "reassigned_s": done.reassigned_s,
            "takeover_s_by_partition": {str(p): t for p, t in times.items()},
            # The first of the dead worker's partitions decided again, and the last.
            "takeover_s": min(found) if found else None,
            "all_partitions_s": max(found) if len(found) == len(times) else None,
            "decided_per_second_after_kill": per_second,
            "sent": len(expected),
            "lost": len(expected - decided),
            "topic_duplicates": len(records) - len(decided),
            "workers_crashed": stack.crashed(),
            "crash_log_lines": stack.crash_lines(),
            "workdir": str(root),
        }
    finally:
        stack.close()
        if not config.keep and config.root is None:
            shutil.rmtree(root, ignore_errors=True)
