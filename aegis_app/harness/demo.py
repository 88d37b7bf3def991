"""`make demo`: the whole stack on one machine, with generated traffic.

Starts the embedded broker, generates data and trains a model if there is none yet,
backfills the worker's feature state with the data's first days (`aegis backfill`: the
worker starts warm, its windows already full), starts a worker (and the API and analyst
page), streams the transactions that follow with their delayed labels plus the odd
malformed record, and prints a live line of throughput and alerts.
A retraining job (`aegis retrain --every 120`) trains challengers from the store as labels
arrive; the data carries a new fraud pattern (spending bursts) from day 60 that the first
model never saw, and a promoted version shows up in the live line when the worker
switches to it. Ctrl-C stops everything it started.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import secrets
import signal
import sys
import time
from pathlib import Path

import httpx
import pandas as pd

from aegis_app.core import config, files
from aegis_app.core.settings import TRANSACTIONS_TOPIC, Settings, env_value
from aegis_app.core.source import SourceReader
from aegis_app.harness import simulator
from aegis_app.harness.embedded_broker import (
    EMBEDDED_FETCH_INTERVAL_MS,
    EmbeddedBroker,
    free_port,
    port_in_use,
)
from aegis_app.harness.scenarios import add_spending_bursts
from aegis_app.harness.stack import ManagedProcess, aegis_command, start_worker, wait_http_ok
from aegis_app.kafka import clients
from aegis_app.worker.backfill import backfill
from models.lifecycle import registry

ROOT = Path("var/demo")
LABEL_DELAY_DAYS = 7  # the default preset's
MALFORMED_EVERY_S = 15.0


def _port(preferred: int) -> int:
    return preferred if not port_in_use(preferred) else free_port()


def _ensure_data(path: Path, customers: int, terminals: int, days: int, bursts_from: int) -> None:
    if path.exists():
        return
    print(f"generating {customers} cards x {days} days of transactions -> {path}")
    frame = simulator.generate(customers=customers, terminals=terminals, days=days, seed=0)
    frame = add_spending_bursts(frame, bursts_from)
    files.write_transactions(frame, path)


def _first_day(data: Path) -> pd.Timestamp:
    return pd.Timestamp(files.read_transactions(data)["TX_DATETIME"].min()).normalize()


def _ensure_model(data: Path, model_dir: Path, replay_from: pd.Timestamp) -> None:
    if registry.active_version(model_dir):
        return
    print("training a first model (features + detectors; about a minute)...")
    from models.lifecycle.experiment import train
    from models.lifecycle.training import Window

    frame = files.read_transactions(data)
    # The two weeks that end a label delay before the replay starts (their labels are
    # known by then, none later is used): the stream then runs past what this model has
    # seen, with the history its training features had (the backfill below).
    start = max(replay_from - pd.Timedelta(days=14 + LABEL_DELAY_DAYS), _first_day(data))
    manifest = train(
        frame,
        model_dir,
        Window(start, 14),
        delay_days=LABEL_DELAY_DAYS,
        progress=True,
        config=files.simulator_config(),
    )
    print(f"model {manifest.version} trained on {manifest.training_window}")


def _backfill(data: Path, broker_url: str, replay_from: pd.Timestamp) -> None:
    """The state of every transaction before `replay_from`, into the worker's changelogs
    (what `aegis backfill --until` does): the worker starts with it."""
    frame, _ = SourceReader(files.simulator_config()).read_file(data)
    history = frame[frame["ts"] < int(replay_from.timestamp())]
    print(f"backfilling the state of {len(history):,} transactions before {replay_from.date()}")
    summary = backfill(Settings.from_env(kafka_broker=broker_url), history, progress=True)
    print(f"  {summary['keys']:,} keys, {summary['bytes']:,} bytes, as of {summary['as_of']}")


def _replay_file(data: Path, replay_from: pd.Timestamp) -> Path:
    """The transactions from `replay_from` on, the part the demo streams."""
    path = data.with_name(f"{data.stem}-from-{replay_from.date()}{data.suffix}")
    if not path.exists():
        frame = files.read_transactions(data)
        files.write_transactions(frame[frame["TX_DATETIME"] >= replay_from], path)
    return path


async def _send_malformed(bootstrap: str, n: int) -> None:
    producer = clients.producer(bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            TRANSACTIONS_TOPIC, value=b"\x01not-an-avro-record-" + str(n).encode(), key=b"0"
        )
    finally:
        await producer.stop()


def _optional_server(name: str, module: str, args: list[str], log: Path, env: dict):
    if importlib.util.find_spec(module) is None:
        return None
    return ManagedProcess(name, aegis_command(*args), log, env, stop_with_parent=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=300.0, help="transactions per second")
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--terminals", type=int, default=4000)
    parser.add_argument("--days", type=int, default=120)
    # From day 60: the first model trains on days 39-52 (two weeks ending a label delay
    # before the replay), whose 30-day windows (37 days for the merchant's delayed ones)
    # are full, like the live windows the backfill gives the worker.
    parser.add_argument("--bursts-from", type=int, default=60, help="new fraud pattern")
    parser.add_argument(
        "--warm-days",
        type=int,
        help="days of history backfilled into the worker's state before it starts; the "
        "replay starts after them (default: --bursts-from)",
    )
    parser.add_argument("--retrain-every", type=float, default=120.0, help="seconds")
    args = parser.parse_args(argv)

    ROOT.mkdir(parents=True, exist_ok=True)
    logs = ROOT / "logs"
    data = ROOT / "transactions.parquet"
    model_dir = ROOT / "models"
    started = time.monotonic()
    _ensure_data(data, args.customers, args.terminals, args.days, args.bursts_from)
    warm_days = args.bursts_from if args.warm_days is None else args.warm_days
    replay_from = _first_day(data) + pd.Timedelta(days=warm_days)
    _ensure_model(data, model_dir, replay_from)
    replayed = _replay_file(data, replay_from)

    # Every process the demo starts stops with it, even when it is killed outright.
    broker = EmbeddedBroker(port=_port(9092), log_path=logs / "broker.log", stop_with_parent=True)
    processes: list[ManagedProcess] = []
    stop = False

    def on_signal(signum, frame):
        nonlocal stop
        stop = True

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)
    try:
        broker.start()
        web_port, api_port, page_port = _port(6066), _port(8000), _port(8501)
        # The embedded broker starts empty each run: the history's state goes in first, and
        # the worker (a fresh state directory) recovers it when it starts.
        _backfill(data, broker.url, replay_from)
        state = ROOT / f"state-{int(time.time())}"
        # Every consumer spaces its reads: the embedded broker's reads get dearer as the
        # demo's topics fill (aegis_app.harness.embedded_broker).
        interval = env_value("fetch_interval_ms") or str(EMBEDDED_FETCH_INTERVAL_MS)
        # Every process reads the simulator's schema: the default preset.
        paced = {"AEGIS_FETCH_INTERVAL_MS": interval, "AEGIS_CONFIG": str(config.resolve(None))}
        worker = start_worker(
            broker.url,
            state,
            web_port,
            model_dir,
            logs / "worker.log",
            env=paced,
            stop_with_parent=True,
        )
        processes.append(worker)
        token = Settings.from_env().api_token or secrets.token_urlsafe(24)
        env = {
            **paced,
            "AEGIS_KAFKA_BROKER": broker.url,
            "AEGIS_MODEL_DIR": str(model_dir),
            "AEGIS_API_TOKEN": token,
            "AEGIS_WEB_PORT": str(web_port),
            "AEGIS_DB_URL": f"sqlite:///{ROOT / 'aegis.db'}",
            "AEGIS_API_URL": f"http://127.0.0.1:{api_port}",
        }
        api = _optional_server(
            "api",
            "aegis_app.serving.api",
            ["api", "--broker", broker.url, "--port", str(api_port)],
            logs / "api.log",
            env,
        )
        page = _optional_server(
            "dashboard",
            "dashboard.app",
            ["dashboard", "--port", str(page_port)],
            logs / "dashboard.log",
            env,
        )
        processes += [p for p in (api, page) if p is not None]
        if api is not None:  # the API's sink fills the store retraining learns from
            retrainer = ManagedProcess(
                "retrain",
                aegis_command("retrain", "--every", str(args.retrain_every)),
                logs / "retrain.log",
                env,
                stop_with_parent=True,
            ).start()
            processes.append(retrainer)
        wait_http_ok(f"http://127.0.0.1:{web_port}/health/", 180, worker)
        replayer = ManagedProcess(
            "replay",
            aegis_command(
                "replay", str(replayed), "--broker", broker.url, "--rate", str(args.rate), "--quiet"
            ),
            logs / "replay.log",
            paced,
            stop_with_parent=True,
        ).start()
        processes.append(replayer)

        print()
        print("Aegis demo is running. Where to look:")
        web = f"http://127.0.0.1:{web_port}"
        print(f"  worker web view  {web}/health/  /alerts/  /entities/card/<id>/")
        if api:
            print(f"  REST API         http://127.0.0.1:{api_port}/docs   (token: {token})")
        if page:
            print(f"  analyst page     http://127.0.0.1:{page_port}/")
        if api:
            print(f"  retraining       every {args.retrain_every:.0f} s, log {logs}/retrain.log")
        print(f"  broker           {broker.url}   logs in {logs}/")
        print("Ctrl-C stops everything.\n")

        _live_line(web_port, started, broker.bootstrap, lambda: stop)
    except BrokenPipeError:
        pass  # our output was piped and the reader went first (`make demo | head`): stop
    finally:
        _say("\nstopping...")
        for process in reversed(processes):
            process.stop()
        broker.stop()
    return 0


def _say(text: str) -> None:
    """Print, unless our output has gone (a closed pipe): then never again."""
    try:
        print(text, flush=True)
    except (BrokenPipeError, ValueError):
        # Later writes, and the interpreter's last flush, go nowhere instead of failing.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _live_line(web_port: int, started: float, bootstrap: str, stopped) -> None:
    previous, previous_at = 0, time.monotonic()
    first_alert_after = None
    model = None
    malformed_sent, last_malformed = 0, time.monotonic()
    while not stopped():
        time.sleep(2.0)
        try:
            health = httpx.get(f"http://127.0.0.1:{web_port}/health/", timeout=2).json()
        except httpx.HTTPError:
            print("\rworker not answering...", end="", flush=True)
            continue
        counts = health.get("counts", {})
        if model is not None and health.get("model_version") not in (None, model):
            print(f"\nthe worker switched model {model} -> {health['model_version']}")
        model = health.get("model_version") or model
        decided = sum(v for k, v in counts.items() if k.startswith("decisions_"))
        alerts = counts.get("decisions_review", 0) + counts.get("decisions_block", 0)
        if alerts and first_alert_after is None:
            first_alert_after = time.monotonic() - started
        now = time.monotonic()
        rate = (decided - previous) / (now - previous_at)
        previous, previous_at = decided, now
        if now - last_malformed > MALFORMED_EVERY_S:
            malformed_sent += 1
            asyncio.run(_send_malformed(bootstrap, malformed_sent))
            last_malformed = now
        line = (
            f"decided {decided:>9,} ({rate:6.0f}/s) | alerts {alerts:>6,} "
            f"(review {counts.get('decisions_review', 0):,}, "
            f"block {counts.get('decisions_block', 0):,}) | "
            f"dead letters {counts.get('dead_letters', 0)} | model {health.get('model_version')}"
        )
        if first_alert_after is not None:
            line += f" | first alert after {first_alert_after:.0f}s"
        print("\r" + line, end="", flush=True)


if __name__ == "__main__":
    sys.exit(main())
