"""The fault-injection run, `aegis chaos`.

While generated transactions stream in (with poison records mixed in), the run

- SIGKILLs a worker mid-stream and starts it again later (same data directory and port),
- adds a worker mid-stream (a rebalance) and removes it again with SIGTERM (graceful),
- freezes the broker with SIGSTOP for some seconds, then SIGCONT (every client must ride
  out the silence and reconnect; the embedded broker keeps nothing across a *restart*, so a
  restart cannot be survived by design: workers would need fresh state, see aegis_app/worker),
- mixes poison records (poison.py) into aegis.transactions,

and then checks the outcome from the topics and the result store (checks.py); `verdict`
says whether every check held.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aegis_app.core.settings import DEADLETTER_TOPIC, DECISIONS_TOPIC
from aegis_app.harness.chaos.checks import read_all, summarize, wait_decided
from aegis_app.harness.chaos.data import chaos_transactions, ensure_model
from aegis_app.harness.chaos.poison import poison_records
from aegis_app.harness.chaos.stack import ChaosStack
from aegis_app.harness.chaos.streaming import _stream, interleave

FAULTS = ("kill", "restart", "add", "pause", "remove")


@dataclass
class ChaosConfig:
    transactions: int = 20_000
    workers: int = 2
    seconds: float = 120.0
    poison: int = 10_000
    faults: tuple[str, ...] = FAULTS
    broker_pause_s: float = 8.0
    partitions: int = 4
    rebalance_timeout: float | None = None  # None: the workers' default
    model_dir: Path | None = None
    root: Path | None = None
    seed: int = 0
    settle_timeout: float = 240.0
    card_sample: int = 60
    keep: bool = False


def _schedule(config: ChaosConfig, stack: ChaosStack, n_items: int) -> dict[int, Callable]:
    """Item index -> fault action. Faults happen at fixed fractions of the stream."""
    victim = f"w{config.workers - 1}"
    extra = f"w{config.workers}"
    actions: dict[int, Callable] = {}

    def at(fraction: float, action: Callable) -> None:
        index = min(n_items - 1, int(n_items * fraction))
        while index in actions:
            index += 1
        actions[index] = action

    def restart() -> None:
        stack.start_worker(victim)
        stack.wait_healthy(victim)
        stack.note("restarted worker healthy", worker=victim)

    def add() -> None:
        stack.start_worker(extra)
        stack.wait_healthy(extra)
        stack.note("added worker healthy", worker=extra)

    def remove() -> None:
        # Let it join first (it may still be starting when its turn comes).
        stack.wait_healthy(extra, timeout=120)
        stack.stop_worker(extra)

    if "kill" in config.faults:
        at(0.15, lambda: stack.kill_worker(victim))
        if "restart" in config.faults:
            at(0.40, restart)
    if "add" in config.faults:
        at(0.50, add)
    if "pause" in config.faults and config.broker_pause_s > 0:
        at(0.65, lambda: stack.pause_broker(config.broker_pause_s))
    if "remove" in config.faults and "add" in config.faults:
        at(0.85, remove)
    return actions


def run(config: ChaosConfig) -> dict:
    """A full chaos run; returns the figures (the checks: see checks.py)."""
    root = Path(config.root or tempfile.mkdtemp(prefix="aegis-chaos-"))
    root.mkdir(parents=True, exist_ok=True)
    model_dir = Path(config.model_dir or root / "models")
    ensure_model(model_dir)
    txs = chaos_transactions(config.transactions, config.seed)
    poison = poison_records(config.poison, config.seed)
    items = interleave(txs, poison, config.seed)
    rate = len(items) / config.seconds
    stack = ChaosStack(root, model_dir, config.partitions, config.rebalance_timeout)
    started = time.monotonic()
    try:
        stack.start_broker()
        for i in range(config.workers):
            stack.start_worker(f"w{i}")
        stack.start_sink()
        for name in list(stack.workers):
            stack.wait_healthy(name)
        stack.wait_all_assigned()
        stack.note("all partitions assigned; streaming", items=len(items), rate=round(rate, 1))
        actions = _schedule(config, stack, len(items))
        sent = asyncio.run(_stream(stack, items, rate, actions))
        stack.note("stream sent", seconds=round(sent.seconds, 1))
        expected = {tx.transaction_id for tx in sent.transactions}
        wait_decided(stack.broker.url, expected, config.settle_timeout, stack.crashed)
        stack.note("decisions complete (or settle timeout)")
        stack.wait_idle()
        # Read again after the workers went quiet: late duplicates count too.
        decision_records = read_all(stack.broker.url, DECISIONS_TOPIC)
        letter_records = read_all(stack.broker.url, DEADLETTER_TOPIC)
        result = summarize(
            stack, sent, decision_records, letter_records, card_sample=config.card_sample
        )
        result.update(
            {
                "workers": config.workers,
                "faults": list(config.faults),
                "stream_seconds": round(sent.seconds, 1),
                "offered_rate": round(rate, 1),
                "run_seconds": round(time.monotonic() - started, 1),
                "events": stack.events,
                "workdir": str(root),
            }
        )
        result["ok"] = verdict(result)
        return result
    finally:
        stack.close()
        if not config.keep and config.root is None:
            shutil.rmtree(root, ignore_errors=True)


def verdict(result: dict) -> bool:
    return (
        result["lost"] == 0
        and result["doubled_after_dedup"] == 0
        and result["conflicting_duplicates"] == 0
        and result["unexpected_decisions"] == 0
        and result["poison_not_dead_lettered"] == 0
        and result["feature_mismatches"] == 0
        and result["card_state"]["mismatched"] == 0
        and not result["workers_crashed"]
        and result.get("store", {}).get("missing", 0) == 0
    )
