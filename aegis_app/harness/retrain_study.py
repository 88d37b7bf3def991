"""`aegis retrain-study`: continuous learning proven in a streaming run.

Generated transactions, with a new fraud pattern (spending bursts, aegis_app/scenarios.py)
starting mid-stream, go through the running stack (embedded broker, a worker, the sink
into a SQLite store) with each label published when it becomes known (transaction time +
delay), exactly as `aegis replay` does. The stream is replayed one event-time week at a
time; at each week's end the retraining job runs on the store (models/retraining.py)
and, when it promotes a challenger, announces it, and the worker switches before the
next week streams.

Two arms, scored on identical features:
- retraining: the scores the stream actually produced (whichever version was active);
- static: the first model, re-scoring the features the stream stored for each transaction
  (the stream's features equal the batch ones, tests/integration/test_pipeline.py).
Per week: average precision, CP@100, and the share of spending-burst frauds alerted on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from aegis_app.core.files import iter_frame
from aegis_app.core.records import parse_datetime
from aegis_app.core.timerules import DAY
from aegis_app.harness import simulator
from aegis_app.harness.embedded_broker import EmbeddedBroker, free_port
from aegis_app.harness.scenarios import SPENDING_BURST, add_spending_bursts
from aegis_app.harness.stack import ManagedProcess, aegis_command, start_worker, wait_http_ok
from aegis_app.ingest.replay import publication_order
from aegis_app.kafka.model_updates import announce
from aegis_app.kafka.producer import Deliveries, make_producer, send_label, send_transaction
from aegis_app.serving.store import Store
from models.lifecycle import registry, retraining
from models.lifecycle.evaluation import metrics
from models.lifecycle.experiment import train
from models.lifecycle.training import Window

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StudyConfig:
    customers: int = 1000
    terminals: int = 2000
    days: int = 84
    seed: int = 0
    drift_day: int = 42  # spending bursts start here
    cards_per_day: int = 4
    first_week_day: int = 28  # weekly evaluation and retraining from this day on
    initial_train_days: int = 14
    delay_days: int = 7
    train_days: tuple[int, ...] = (7, 14)
    holdout_days: int = 7
    margin: float = 0.01


def _items_by_week(data: pd.DataFrame, config: StudyConfig) -> list[list[tuple[str, object]]]:
    """The replay schedule (transactions, labels at their known time) cut at each week's
    end: segment 0 runs up to first_week_day, then one segment per week."""
    start = int(pd.Timestamp(data["TX_DATETIME"].min()).normalize().timestamp())
    bounds = [start + d * DAY for d in range(config.first_week_day, config.days + 1, 7)]
    segments: list[list[tuple[str, object]]] = [[] for _ in range(len(bounds) + 1)]
    index = 0
    for kind, item in publication_order(iter_frame(data), config.delay_days):
        if kind == "bad":
            continue
        moment = item.ts if kind == "tx" else parse_datetime(item.known_at)
        while index < len(bounds) and moment >= bounds[index]:
            index += 1
        if index == len(bounds):
            break  # labels known after the data ends are never needed
        segments[index].append((kind, item))
    return segments[:-1] if not segments[-1] else segments


async def _send(broker_url: str, items: list[tuple[str, object]]) -> tuple[int, int]:
    producer = make_producer(broker_url)
    await producer.start()
    deliveries = Deliveries()
    sent = labels = 0
    try:
        for kind, item in items:
            if kind == "tx":
                sent += 1
                await deliveries.send(
                    lambda item=item: send_transaction(producer, item.payload, item.key)
                )
            else:
                labels += 1
                await deliveries.send(lambda item=item: send_label(producer, item))
        await producer.flush()
        await deliveries.check(wait=True)
    finally:
        await producer.stop()
    return sent, labels


def _wait_stored(store: Store, decisions: int, labels: int, procs: list, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        have = (store.count_decisions(), store.count_labels())
        if have[0] >= decisions and have[1] >= labels:
            return
        for proc in procs:
            if not proc.alive:
                raise RuntimeError(f"{proc.name} exited:\n{proc.log_tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"store has {have}, expected ({decisions}, {labels})")
        time.sleep(0.5)


def _wait_version(web_url: str, version: str, timeout: float = 60) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if httpx.get(f"{web_url}/health/", timeout=2).json().get("model_version") == version:
                return time.monotonic() - started
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the worker did not switch to {version} within {timeout} s")


def weekly_metrics(store: Store, data: pd.DataFrame, static, config: StudyConfig) -> list[dict]:
    """Per evaluation week: both arms' AP, CP@100 and spending-burst frauds alerted on."""
    truth = data.set_index("TRANSACTION_ID")[["TX_FRAUD", "TX_FRAUD_SCENARIO"]]
    truth.index = truth.index.astype(str)  # the store keeps ids as text
    origin = pd.Timestamp(data["TX_DATETIME"].min()).normalize()
    weeks = []
    for day in range(config.first_week_day, config.days - 6, 7):
        window = Window(origin + pd.Timedelta(days=day), 7)
        rows = retraining.load_window(store, window, None)
        ids = rows.frame["TRANSACTION_ID"].to_numpy()
        y = truth.loc[ids, "TX_FRAUD"].to_numpy()
        testing = truth.loc[ids, "TX_FRAUD_SCENARIO"].to_numpy() == SPENDING_BURST
        live = rows.frame["score"].to_numpy()
        stored = store.actions(ids.tolist())
        live_alert = np.array([stored[str(t)] != "allow" for t in ids])
        static_score = static.score(rows.matrix(list(static.feature_names)))["ensemble"]
        static_alert = static_score >= static.thresholds["review"]
        week = {"week_start_day": day, "rows": len(ids), "frauds": int(y.sum())}
        week["burst_frauds"] = int(testing.sum())
        for arm, score, alert in (
            ("retraining", live, live_alert),
            ("static", static_score, static_alert),
        ):
            result = metrics(y, score, rows.frame)
            week[arm] = {
                "average_precision": _round(result["average_precision"]),
                "card_precision_at_100": _round(result["card_precision_at_100"]),
                "bursts_alerted": _round(alert[testing].mean()) if testing.any() else None,
            }
        week["versions"] = sorted(set(rows.frame["model_version"]))
        weeks.append(week)
    return weeks


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    weeks = result["weeks"]
    x = [w["week_start_day"] for w in weeks]
    panels = (
        ("average_precision", "Average precision"),
        ("card_precision_at_100", "Card precision@100"),
        ("bursts_alerted", "Spending-burst frauds alerted on"),
    )
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, (key, title) in zip(axes, panels):
        for arm, style in (("static", "o--"), ("retraining", "o-")):
            values = [np.nan if w[arm][key] is None else w[arm][key] for w in weeks]
            ax.plot(x, values, style, label=arm)
        ax.axvline(result["config"]["drift_day"], color="red", alpha=0.6, linestyle=":")
        for promo in result["promotions"]:
            ax.axvline(promo["event_day"], color="green", alpha=0.35)
        ax.set_title(title)
        ax.set_xlabel("event day (week start)")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower left")
    fig.suptitle(
        "Static model vs retraining (red: spending bursts start; green: a challenger promoted)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_study(
    config: StudyConfig,
    out: Path,
    workdir: Path | None = None,
    report: Callable[[str], None] = print,
) -> dict:
    root = Path(workdir or tempfile.mkdtemp(prefix="aegis-retrain-study-"))
    root.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    data = simulator.generate(config.customers, config.terminals, config.days, config.seed)
    data = add_spending_bursts(data, config.drift_day, config.cards_per_day, config.seed)
    report(
        f"data: {len(data)} transactions, {int(data['TX_FRAUD'].sum())} frauds, spending bursts "
        f"from day {config.drift_day} ({int((data['TX_FRAUD_SCENARIO'] == SPENDING_BURST).sum())})"
    )
    model_dir = root / "models"
    origin = pd.Timestamp(data["TX_DATETIME"].min()).normalize()
    # The first model's window ends where the first retraining run's holdout starts, so
    # champion and challengers are compared out of sample from the first run on.
    end_day = config.first_week_day - config.delay_days - config.holdout_days
    start_day = max(end_day - config.initial_train_days, 0)
    window = Window(origin + pd.Timedelta(days=start_day), end_day - start_day)
    static_version = train(data, model_dir, window, config.delay_days).version
    report(f"initial model {static_version} trained on {window.describe()}")
    segments = _items_by_week(data, config)

    broker = EmbeddedBroker(port=free_port(), log_path=root / "broker.log")
    procs: list[ManagedProcess] = []
    db_url = f"sqlite:///{root}/store.db"
    store = None
    promotions, runs = [], []
    try:
        broker.start()
        web_port = free_port()
        web_url = f"http://127.0.0.1:{web_port}"
        procs.append(
            start_worker(broker.url, root / "state", web_port, model_dir, root / "worker.log")
        )
        sink_args = aegis_command("sink", "--broker", broker.url, "--db-url", db_url)
        procs.append(ManagedProcess("sink", sink_args, root / "sink.log").start())
        wait_http_ok(f"{web_url}/health/", 180, procs[0])
        store = Store(db_url)
        sent = labels = 0
        config_retrain = retraining.RetrainConfig(
            train_days=config.train_days,
            holdout_days=config.holdout_days,
            delay_days=config.delay_days,
            margin=config.margin,
        )
        for index, items in enumerate(segments):
            end_day = config.first_week_day + 7 * index
            t0 = time.monotonic()
            tx, lab = asyncio.run(_send(broker.url, items))
            sent, labels = sent + tx, labels + lab
            _wait_stored(store, sent, labels, procs, timeout=900)
            report(
                f"up to day {end_day}: {sent} transactions decided and stored, {labels} labels "
                f"({time.monotonic() - t0:.0f} s)"
            )
            run = retraining.retrain(
                store,
                model_dir,
                config_retrain,
                on_promote=lambda entry: announce(broker.url, entry, model_dir),
                report=report,
            )
            runs.append({"event_day": end_day, **run})
            if run["decision"] == "promoted":
                switch_s = _wait_version(web_url, run["promoted"])
                promotions.append(
                    {
                        "event_day": end_day,
                        "version": run["promoted"],
                        "switch_s": round(switch_s, 2),
                    }
                )
                report(f"worker switched to {run['promoted']} {switch_s:.1f} s after promotion")
        static = registry.load(model_dir, static_version)
        weeks = weekly_metrics(store, data, static, config)
        result = {
            "config": asdict(config),
            "transactions": sent,
            "labels": labels,
            "static_version": static_version,
            "promotions": promotions,
            "runs": [
                {
                    "event_day": r["event_day"],
                    "decision": r["decision"],
                    "reason": r["reason"],
                    "champion": (r.get("champion") or {}).get("metrics"),
                    "challengers": [c.get("metrics") for c in r["challengers"]],
                }
                for r in runs
            ],
            "weeks": weeks,
            "seconds": round(time.monotonic() - started, 1),
        }
        (out / "retrain-study.json").write_text(json.dumps(result, indent=2, default=str))
        plot(result, out / "retrain-study.png")
        report(f"wrote {out / 'retrain-study.json'} and {out / 'retrain-study.png'}")
        return result
    finally:
        if store is not None:
            store.close()
        for proc in reversed(procs):
            proc.stop()
        broker.stop()
        if workdir is None:
            shutil.rmtree(root, ignore_errors=True)


def _round(value: float | None) -> float | None:
    if value is None or not np.isfinite(value):
        return None
    return round(float(value), 4)
