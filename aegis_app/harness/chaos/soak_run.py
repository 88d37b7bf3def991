"""The soak run, `aegis chaos --soak --minutes M`: streams at a fixed rate instead of
injecting faults, with an event-time span of months, and samples each worker's RSS and
RocksDB directory size every 30 s to see whether state stops growing once the state horizon
(the longest an entity's state keeps under the config, state_horizon_days) has passed.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aegis_app.core.config import Config
from aegis_app.core.files import iter_frame, simulator_config
from aegis_app.core.source import SourceReader
from aegis_app.core.timerules import DAY
from aegis_app.harness.chaos.checks import check_features, wait_decided
from aegis_app.harness.chaos.data import ensure_model, soak_frame
from aegis_app.harness.chaos.stack import ChaosStack, dir_bytes, live_state, rss_bytes
from aegis_app.harness.chaos.streaming import _stream
from aegis_app.ingest.replay import publication_order
from tables.engine import compile_plan


@dataclass
class SoakConfig:
    minutes: float = 10.0
    rate: float = 100.0
    workers: int = 2
    event_days: int = 90
    partitions: int = 4
    rebalance_timeout: float | None = None  # None: the workers' default
    model_dir: Path | None = None
    root: Path | None = None
    seed: int = 0
    sample_every_s: float = 30.0
    keep: bool = False


def state_horizon_days(config: Config | None = None) -> float:
    """Days of event time after which no state may grow: the longest horizon any entity's
    state keeps under the config (its windows and delays, plus one label delay for late
    arrivals when a window is delayed; default: the default preset, what the soak sends)."""
    plan = compile_plan(config or simulator_config())
    return max(entity.horizon for entity in plan.entities.values()) / DAY


def soak(config: SoakConfig, report: Callable[[dict], None] | None = None) -> dict:
    root = Path(config.root or tempfile.mkdtemp(prefix="aegis-soak-"))
    root.mkdir(parents=True, exist_ok=True)
    model_dir = Path(config.model_dir or root / "models")
    ensure_model(model_dir)
    n = int(config.rate * config.minutes * 60)
    frame = soak_frame(n, config.event_days, config.seed)
    schema = simulator_config()  # the simulator's data
    rows = list(iter_frame(frame, schema))
    items = list(publication_order(rows, schema.label_delay_days, schema))
    items = [(k, v) for k, v in items if k in ("tx", "label")]
    n_tx = sum(1 for k, _ in items if k == "tx")
    rate = len(items) / (config.minutes * 60)  # labels ride along at the same pace
    stack = ChaosStack(root, model_dir, config.partitions, config.rebalance_timeout)
    samples: list[dict] = []
    first_ts = int(rows[0][1]["ts"])
    horizon = state_horizon_days(schema)
    progress = {"ts": first_ts, "sent": 0}
    stop = threading.Event()

    def sampler() -> None:
        started = time.monotonic()
        while not stop.wait(config.sample_every_s):
            sample = {
                "minute": round((time.monotonic() - started) / 60, 2),
                "tx_sent": progress["sent"],
                "event_day": round((progress["ts"] - first_ts) / DAY, 1),
                "broker_rss_mb": round((rss_bytes(stack.broker.pid) or 0) / 2**20, 1),
                "workers": {},
            }
            for worker in stack.workers.values():
                health = stack.health(worker) or {}
                live = live_state(worker.data_dir) or (None, None)
                sample["workers"][worker.name] = {
                    "rss_mb": round((rss_bytes(worker.process.proc.pid) or 0) / 2**20, 1),
                    "rocksdb_dir_mb": round(dir_bytes(worker.data_dir) / 2**20, 2),
                    "state_keys": live[0],
                    "state_kb": round(live[1] / 1024, 1) if live[1] is not None else None,
                    "scored": health.get("counts", {}).get("scored"),
                }
            samples.append(sample)
            if report:
                report(sample)

    started = time.monotonic()
    try:
        stack.start_broker()
        for i in range(config.workers):
            stack.start_worker(f"w{i}")
        for name in list(stack.workers):
            stack.wait_healthy(name)
        stack.wait_all_assigned()
        thread = threading.Thread(target=sampler, daemon=True)
        thread.start()

        def track(index: int) -> None:
            kind, item = items[index]
            if kind == "tx":
                progress["ts"] = item.ts
                progress["sent"] += 1

        sent = asyncio.run(_stream(stack, items, rate, {}, on_item=track))
        expected = {tx.transaction_id for tx in sent.transactions}
        decision_records = wait_decided(stack.broker.url, expected, 240, stack.crashed)
        stop.set()
        thread.join(5)
        decisions = [json.loads(r.value) for r in decision_records]
        labelled, _ = SourceReader(schema).frame(frame)  # the records with their labels
        bad, by_family, _examples = check_features(sent.transactions, decisions, labelled, schema)
        result = {
            "minutes": config.minutes,
            "tx_rate": config.rate,
            "messages_per_s": round(rate, 1),  # transactions + their labels
            "transactions": n_tx,
            "labels": sent.labels,
            "event_days": round((sent.transactions[-1].ts - sent.transactions[0].ts) / DAY, 1),
            "cards": int(frame["CUSTOMER_ID"].nunique()),
            "terminals": int(frame["TERMINAL_ID"].nunique()),
            "decided": len(expected & {str(d["transaction_id"]) for d in decisions}),
            "feature_mismatches": bad,
            "feature_mismatches_by_family": by_family,
            "state_horizon_days": horizon,
            "samples": samples,
            "workers_crashed": stack.crashed(),
            "run_seconds": round(time.monotonic() - started, 1),
            "workdir": str(root),
        }
        result["verdict"] = soak_verdict(samples, horizon)
        return result
    finally:
        stop.set()
        stack.close()
        if not config.keep and config.root is None:
            shutil.rmtree(root, ignore_errors=True)


def soak_verdict(samples: list[dict], horizon_days: float, tolerance: float = 0.15) -> dict:
    """Did state stop growing after the horizon? Compares the first sample past the horizon
    with the last one: the live table state (keys + value bytes, all workers) and each
    worker's RSS. The RocksDB directory size is reported, not judged (see live_state)."""
    past = [s for s in samples if s["event_day"] >= horizon_days]
    if len(past) < 2:
        return {"bounded": None, "why": f"fewer than 2 samples past day {horizon_days}"}
    first, last = past[0], past[-1]

    def total(sample: dict, name: str) -> float:
        return sum(w.get(name) or 0 for w in sample["workers"].values())

    state = [total(first, "state_kb"), total(last, "state_kb")]
    keys = [total(first, "state_keys"), total(last, "state_keys")]
    state_growth = state[1] / max(state[0], 1e-6) - 1
    rss_growth = {
        name: round(end["rss_mb"] / max(first["workers"][name]["rss_mb"], 1e-6) - 1, 3)
        for name, end in last["workers"].items()
        if name in first["workers"]
    }
    bounded = state_growth <= tolerance and all(g <= tolerance for g in rss_growth.values())
    return {
        "bounded": bounded,
        "from_event_day": first["event_day"],
        "to_event_day": last["event_day"],
        "state_kb": [round(x, 1) for x in state],
        "state_keys": keys,
        "state_growth": round(state_growth, 3),
        "rss_growth": rss_growth,
        "rocksdb_dir_mb": [
            round(total(first, "rocksdb_dir_mb"), 1),
            round(total(last, "rocksdb_dir_mb"), 1),
        ],
        "tolerance": tolerance,
    }
