"""`aegis chaos`: fault injection on the real embedded broker with real worker processes.

While generated transactions stream in (with poison records mixed in), the run

- SIGKILLs a worker mid-stream and starts it again later (same data directory and port),
- adds a worker mid-stream (a rebalance) and removes it again with SIGTERM (graceful),
- freezes the broker with SIGSTOP for some seconds, then SIGCONT (every client must ride
  out the silence and reconnect; the embedded broker keeps nothing across a *restart*, so a
  restart cannot be survived by design: workers would need fresh state, see worker.py),
- mixes poison records (bad encodings, unknown wire versions, truncated or trailing bytes,
  invalid UTF-8, huge fields, NaN/inf/negative amounts, bad dates, wrong types) into
  aegis.transactions,

and then checks, from the topics (and the result store, when the decision sink is there):
every valid transaction decided exactly once after de-duplication by transaction id, every
poison record on aegis.deadletter with a reason, the features of every decision equal to the
batch recomputation (tables.batch.compute_features on the transactions actually sent), each
sampled card's table state equal to the batch state when read through any worker's web view
(faust table_route), and no worker crashed.

`aegis chaos --soak --minutes M` streams at a fixed rate instead, with an event-time span of
months, and samples each worker's RSS and RocksDB directory size every 30 s to see whether
state stops growing once the state horizon (longest window + 2 x label delay) has passed.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
import os
import random
import shutil
import signal
import struct
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import murmur2

from aegis_app.core import codec
from aegis_app.core.files import iter_frame
from aegis_app.core.records import InvalidRecord, Transaction
from aegis_app.core.settings import (
    DEADLETTER_TOPIC,
    DECISIONS_TOPIC,
    TRANSACTIONS_TOPIC,
    Settings,
    broker_host_port,
)
from aegis_app.harness import simulator
from aegis_app.harness.bench import TX_PER_DAY
from aegis_app.harness.embedded_broker import EmbeddedBroker, free_port
from aegis_app.harness.stack import ManagedProcess, aegis_command, start_worker
from aegis_app.kafka.producer import (
    Deliveries,
    make_producer,
    publication_order,
    send_label,
    send_transaction,
)
from tables.batch import compute_features
from tables.features import ALL_FEATURES, DAY, WINDOWS_DAYS, CardState

log = logging.getLogger(__name__)

FAULTS = ("kill", "restart", "add", "pause", "remove")


# --------------------------------------------------------------------------- poison


def _valid_fields(rng: random.Random) -> dict:
    return {
        "transaction_id": rng.randrange(10**12, 2 * 10**12),  # never a real transaction id
        "tx_datetime": "2018-04-01 12:00:00",
        "customer_id": rng.randrange(0, 5000),
        "terminal_id": rng.randrange(0, 10000),
        "tx_amount": round(rng.uniform(1, 200), 2),
    }


def _bad_utf8(rng: random.Random) -> bytes:
    data = _valid_fields(rng)
    data["tx_datetime"] = "X" * 19
    payload = codec.encode(data)
    return payload.replace(b"X" * 19, bytes(rng.choice([0xFF, 0xC3, 0xE2]) for _ in range(19)))


def _wrong_types(rng: random.Random) -> bytes:
    choice = rng.randrange(4)
    if choice == 0:  # JSON where Avro is expected ('{' is an unknown wire version)
        return json.dumps({"transaction_id": "abc", "tx_amount": "lots"}).encode()
    if choice == 1:  # a string where a long is expected: Avro reads a garbage length
        return bytes([codec.WIRE_VERSION]) + b"\x0bnot-a-long" + struct.pack("<d", 1.0)
    if choice == 2:  # a union branch that does not exist (tx_fraud index 7)
        data = _valid_fields(rng)
        body = codec.encode(data)
        return body[:-4] + b"\x0e" + body[-3:]
    data = {**_valid_fields(rng), "tx_fraud": rng.choice([2, 7, -1, 99])}  # not a 0/1 label
    return codec.encode(data)


POISON_KINDS: dict[str, Callable[[random.Random], bytes]] = {
    "empty": lambda rng: b"",
    "garbage": lambda rng: bytes([rng.randrange(2, 256)]) + rng.randbytes(rng.randrange(0, 300)),
    "garbage_v1": lambda rng: bytes([codec.WIRE_VERSION]) + rng.randbytes(rng.randrange(0, 60)),
    "wire_version": lambda rng: (
        bytes([rng.choice([0, *range(2, 256)])]) + codec.encode(_valid_fields(rng))[1:]
    ),
    "truncated": lambda rng: (lambda p: p[: rng.randrange(1, len(p) - 1)])(
        codec.encode(_valid_fields(rng))
    ),
    "trailing": lambda rng: codec.encode(_valid_fields(rng)) + rng.randbytes(rng.randrange(1, 9)),
    "bad_utf8": _bad_utf8,
    "nan": lambda rng: codec.encode({**_valid_fields(rng), "tx_amount": float("nan")}),
    "inf": lambda rng: codec.encode(
        {**_valid_fields(rng), "tx_amount": rng.choice([float("inf"), float("-inf")])}
    ),
    "negative": lambda rng: codec.encode(
        {**_valid_fields(rng), "tx_amount": -rng.uniform(0.01, 1e6)}
    ),
    "too_large_amount": lambda rng: codec.encode({**_valid_fields(rng), "tx_amount": 1e15}),
    "bad_datetime": lambda rng: codec.encode(
        {
            **_valid_fields(rng),
            "tx_datetime": rng.choice(
                ["yesterday", "", "2018-13-45 99:99:99", "\u2603" * 12, "9" * 64, "NaT"]
            ),
        }
    ),
    "wrong_types": _wrong_types,
    # Huge fields are rare (each is ~20-40 kB on the wire).
    "huge_field": lambda rng: codec.encode(
        {**_valid_fields(rng), "merchant_category": "x" * rng.randrange(20_000, 40_000)}
    ),
}
# Relative frequencies: everything common except the huge records.
POISON_WEIGHTS = {kind: (1 if kind == "huge_field" else 10) for kind in POISON_KINDS}


@dataclass
class Poison:
    kind: str
    key: bytes | None
    payload: bytes
    reason: str  # what codec.decode says: the dead letter must carry a reason too


def poison_records(n: int, seed: int = 0, max_bytes: int | None = None) -> list[Poison]:
    """`n` hostile records, each checked to be refused by the card stage's own decoder."""
    rng = random.Random(seed)
    max_bytes = max_bytes or Settings().max_record_bytes
    kinds = list(POISON_KINDS)
    weights = [POISON_WEIGHTS[k] for k in kinds]
    out: list[Poison] = []
    while len(out) < n:
        kind = rng.choices(kinds, weights)[0]
        payload = POISON_KINDS[kind](rng)
        try:
            codec.decode(payload, max_bytes)
        except InvalidRecord as exc:
            reason = str(exc)
        else:
            continue  # by chance a valid transaction: not poison, draw again
        key = rng.choice([str(rng.randrange(5000)).encode(), f"poison-{len(out)}".encode(), None])
        out.append(Poison(kind, key, payload, reason))
    return out


# --------------------------------------------------------------------------- data


def ensure_model(model_dir: Path, customers: int = 2000, days: int = 60) -> str:
    """An active model version the workers can load; trains a small one if there is none
    or if the active one no longer loads (the bundle format may have moved on)."""
    from models.lifecycle import registry

    version = registry.active_version(model_dir)
    if version:
        try:
            bundle = registry.load(model_dir, version)
            bundle.score(np.zeros((1, len(bundle.feature_names))))  # loads is not enough
            return version
        except Exception as exc:  # noqa: BLE001 - any refusal means: train a fresh one
            log.warning(
                "model %s in %s does not load (%s); training a new one", version, model_dir, exc
            )
    from models.lifecycle.experiment import train
    from models.lifecycle.training import default_train_window

    frame = simulator.generate(customers=customers, terminals=2 * customers, days=days, seed=1)
    window = default_train_window(frame["TX_DATETIME"], 7, 7)
    return train(frame, model_dir, window, delay_days=7).version


def chaos_transactions(n: int, seed: int = 0) -> list[Transaction]:
    """N transactions of the default population (5,000 cards), in time order."""
    days = max(2, math.ceil(n / TX_PER_DAY) + 1)
    frame = simulator.generate(days=days, seed=seed).head(n)
    return [record for _, record, _ in iter_frame(frame)]


def soak_frame(n: int, event_days: int, seed: int = 0) -> pd.DataFrame:
    """About `n` transactions spread over `event_days` days (a small population)."""
    customers = max(20, round(n / (event_days * 1.9)))
    frame = simulator.generate(
        customers=customers, terminals=customers * 2, days=event_days, seed=seed
    )
    return frame.head(n).reset_index(drop=True)


def frame_of(txs: list[Transaction]) -> pd.DataFrame:
    """The sent transactions as a simulator-schema frame, without labels."""
    return pd.DataFrame(
        {
            "TRANSACTION_ID": [t.transaction_id for t in txs],
            "TX_DATETIME": pd.to_datetime([t.tx_datetime for t in txs]),
            "CUSTOMER_ID": [t.customer_id for t in txs],
            "TERMINAL_ID": [t.terminal_id for t in txs],
            "TX_AMOUNT": [t.tx_amount for t in txs],
        }
    )


def card_partition(card: int, partitions: int) -> int:
    """The partition of a card's key (Kafka's default partitioner, as the producers use)."""
    return (murmur2(str(card).encode()) & 0x7FFFFFFF) % partitions


# --------------------------------------------------------------------------- processes


def rss_bytes(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def dir_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total


def live_state(data_dir: Path) -> tuple[int, int] | None:
    """(keys, bytes of keys + values) in a worker's RocksDB tables, actives and standbys:
    the logical state, unlike the directory size, which counts the write-ahead log and
    superseded versions until RocksDB flushes and compacts (64 MB memtables by default)."""
    import rocksdict

    keys = size = 0
    try:
        for path in sorted(Path(data_dir).glob("**/tables/*.db")):
            db = rocksdict.Rdict(
                str(path),
                options=rocksdict.Options(raw_mode=True),
                access_type=rocksdict.AccessType.read_only(),
            )
            try:
                for key, value in db.items():
                    if not key.startswith(b"__faust"):
                        keys += 1
                        size += len(key) + len(value)
            finally:
                db.close()
    except Exception:  # noqa: BLE001 - a DB being created or moved: skip this sample
        return None
    return keys, size


@dataclass
class Worker:
    name: str
    port: int
    data_dir: Path
    log_path: Path
    process: ManagedProcess | None = None
    expected_up: bool = False  # False once we killed or stopped it on purpose
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.alive


@dataclass
class ChaosStack:
    """One embedded broker and named worker processes, all stopped by `close()`."""

    root: Path
    model_dir: Path
    partitions: int = 4
    rebalance_timeout: float = 6.0
    broker: EmbeddedBroker | None = None
    workers: dict[str, Worker] = field(default_factory=dict)
    sink: ManagedProcess | None = None
    db_url: str | None = None
    events: list[dict] = field(default_factory=list)
    _t0: float = field(default_factory=time.monotonic)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def env(self) -> dict[str, str]:
        return {"AEGIS_PARTITIONS": str(self.partitions)}

    def note(self, what: str, **details) -> None:
        entry = {"t": round(time.monotonic() - self._t0, 1), "event": what, **details}
        with self._lock:
            self.events.append(entry)
        log.info("chaos: %s", entry)

    def start_broker(self) -> None:
        self.broker = EmbeddedBroker(port=free_port(), log_path=self.root / "broker.log").start()
        self.note("broker started", pid=self.broker.pid)

    def start_worker(self, name: str) -> Worker:
        worker = self.workers.get(name)
        if worker is None:
            worker = Worker(
                name,
                free_port(),
                self.root / f"state-{name}",
                self.root / f"worker-{name}.log",
            )
            self.workers[name] = worker
        worker.process = start_worker(
            self.broker.url,
            worker.data_dir,
            worker.port,
            self.model_dir,
            worker.log_path,
            rebalance_timeout=self.rebalance_timeout,
            env=self.env,
        )
        worker.expected_up = True
        worker.starts += 1
        self.note("worker started", worker=name, pid=worker.process.proc.pid, port=worker.port)
        return worker

    def kill_worker(self, name: str) -> None:
        worker = self.workers[name]
        worker.expected_up = False
        worker.process.kill()
        self.note("worker SIGKILLed", worker=name)

    def stop_worker(self, name: str) -> int | None:
        worker = self.workers[name]
        worker.expected_up = False
        code = worker.process.stop(timeout=30)
        self.note("worker stopped with SIGTERM", worker=name, exit_code=code)
        return code

    def pause_broker(self, seconds: float) -> None:
        """SIGSTOP the broker (all its connections go silent), SIGCONT after `seconds`."""
        pid = self.broker.pid
        os.killpg(pid, signal.SIGSTOP)
        self.note("broker SIGSTOPped", seconds=seconds)
        try:
            time.sleep(seconds)
        finally:
            os.killpg(pid, signal.SIGCONT)
            self.note("broker SIGCONTed")

    def start_sink(self) -> bool:
        """The result store's decision sink (`aegis sink`), if that module exists."""
        try:
            import aegis_app.serving.store.sink  # noqa: F401
        except ImportError:
            return False
        self.db_url = f"sqlite:///{self.root / 'store.db'}"
        self.sink = ManagedProcess(
            "sink",
            aegis_command("sink", "--broker", self.broker.url, "--db-url", self.db_url),
            self.root / "sink.log",
            self.env,
        ).start()
        self.note("decision sink started", db_url=self.db_url)
        return True

    def health(self, worker: Worker) -> dict | None:
        try:
            response = httpx.get(f"{worker.url}/health/", timeout=5)
            return response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None

    def wait_healthy(self, name: str, timeout: float = 180) -> None:
        worker = self.workers[name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not worker.alive:
                raise RuntimeError(f"worker {name} exited:\n{worker.process.log_tail()}")
            if self.health(worker) is not None:
                return
            time.sleep(0.5)
        raise TimeoutError(f"worker {name} not healthy after {timeout:.0f}s")

    def owners(self) -> dict[int, str]:
        """Input partition -> the name of the worker that has it (per the workers' health)."""
        owned: dict[int, str] = {}
        for worker in self.workers.values():
            if not worker.alive:
                continue
            health = self.health(worker) or {}
            for tp in health.get("assigned_partitions", []):
                topic, _, partition = tp.rpartition("/")
                if topic == TRANSACTIONS_TOPIC:
                    owned[int(partition)] = worker.name
        return owned

    def wait_all_assigned(self, timeout: float = 120) -> dict[int, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            owned = self.owners()
            if len(owned) >= self.partitions:
                return owned
            time.sleep(0.5)
        raise TimeoutError("the workers did not take every partition")

    def wait_idle(self, timeout: float = 60, quiet_s: float = 3.0) -> None:
        """Until no alive worker's counters move for `quiet_s` (or the timeout)."""
        deadline = time.monotonic() + timeout
        last, since = None, time.monotonic()
        while time.monotonic() < deadline:
            now = {
                w.name: (self.health(w) or {}).get("counts", {}).get("scored")
                for w in self.workers.values()
                if w.alive
            }
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet_s:
                return
            time.sleep(0.5)

    def crashed(self) -> list[str]:
        """Workers that exited although they were meant to be running."""
        return [w.name for w in self.workers.values() if w.expected_up and not w.alive]

    def crash_lines(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for worker in self.workers.values():
            try:
                text = worker.log_path.read_text(errors="replace")
            except OSError:
                continue
            lines = [line[:300] for line in text.splitlines() if "ConsistencyError" in line]
            lines += [line[:300] for line in text.splitlines() if "We experienced a crash" in line]
            if lines:
                found[worker.name] = lines[:5]
        return found

    def close(self) -> None:
        if self.broker is not None and self.broker.running:
            try:  # a stopped broker would ignore SIGTERM
                os.killpg(self.broker.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        for worker in self.workers.values():
            if worker.process is not None:
                worker.process.stop()
        if self.sink is not None:
            self.sink.stop()
        if self.broker is not None:
            self.broker.stop()


# --------------------------------------------------------------------------- streaming


@dataclass
class Sent:
    transactions: list[Transaction] = field(default_factory=list)
    poison: list[tuple[Poison, int, int]] = field(default_factory=list)  # (record, part, offset)
    labels: int = 0
    seconds: float = 0.0
    resent: int = 0  # sends the broker refused at first, then delivered


async def _stream(
    stack: ChaosStack,
    items: list[tuple[str, object]],
    rate: float,
    actions: dict[int, Callable[[], None]],
    on_item: Callable[[int], None] | None = None,
) -> Sent:
    """Publish `items` ("tx" | "poison" | "label") at `rate` per second; run `actions[i]`
    (blocking callables, in threads) once item i has been queued; `on_item(i)` inline."""
    sent = Sent()
    producer = make_producer(stack.broker.url)  # max request 1 MiB: the huge poison fits
    await producer.start()
    tasks: list[asyncio.Task] = []
    poison_futures: list[tuple[Poison, asyncio.Future]] = []
    started = time.monotonic()
    # A send the broker refuses is sent again: the loss this harness looks for is Aegis's,
    # not a record that never reached the topic.
    deliveries = Deliveries()
    try:
        for i, (kind, item) in enumerate(items):
            if kind == "tx":
                await deliveries.send(lambda item=item: send_transaction(producer, item))
                sent.transactions.append(item)
            elif kind == "label":
                await deliveries.send(lambda item=item: send_label(producer, item))
                sent.labels += 1
            else:
                future = await producer.send(TRANSACTIONS_TOPIC, value=item.payload, key=item.key)
                poison_futures.append((item, future))
            if on_item is not None:
                on_item(i)
            action = actions.get(i)
            if action is not None:
                tasks.append(asyncio.create_task(asyncio.to_thread(action)))
            ahead = started + (i + 1) / rate - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)
        await producer.flush()
        await deliveries.check(wait=True)
        sent.resent = deliveries.resent
        for poison, future in poison_futures:
            meta = await future
            sent.poison.append((poison, meta.partition, meta.offset))
        sent.seconds = time.monotonic() - started
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            if not task.done():
                await asyncio.wait([task], timeout=60)
        await producer.stop()
    return sent


def _lost_by_partition(transactions: list, lost: set[int], partitions: int = 4) -> dict:
    """Count of lost transactions per aegis.transactions partition (keyed by card, as the
    producer partitions them)."""
    from aiokafka.partitioner import DefaultPartitioner

    choose = DefaultPartitioner()
    every = list(range(partitions))
    counts: Counter[int] = Counter()
    for tx in transactions:
        if tx.transaction_id in lost:
            counts[choose(str(tx.customer_id).encode(), every, every)] += 1
    return {str(p): n for p, n in sorted(counts.items())}


def interleave(txs: list, poison: list[Poison], seed: int = 0) -> list[tuple[str, object]]:
    """Transactions in order with the poison records scattered among them at random."""
    rng = random.Random(seed + 1)
    slots = sorted(rng.randrange(len(txs) + 1) for _ in poison)
    items: list[tuple[str, object]] = []
    p = 0
    for i, tx in enumerate(txs):
        while p < len(slots) and slots[p] <= i:
            items.append(("poison", poison[p]))
            p += 1
        items.append(("tx", tx))
    items.extend(("poison", x) for x in poison[p:])
    return items


# --------------------------------------------------------------------------- checks


def batch_card_states(txs: list[Transaction]) -> dict[int, list]:
    """Every card's CardState value after all of `txs`, as the stream should hold it."""
    states: dict[int, CardState] = defaultdict(CardState)
    for tx in sorted(txs, key=lambda t: (t.ts, t.transaction_id)):
        states[tx.customer_id].observe(tx.transaction_id, tx.ts, tx.tx_amount, tx.terminal_id)
    return {card: state.to_value() for card, state in states.items()}


def feature_family(name: str) -> str:
    if name.startswith("CUSTOMER_ID"):
        return "card"
    if name.startswith("TERMINAL_ID"):
        return "terminal"
    return "transaction"


def check_features(txs: list[Transaction], decisions: list[dict], labelled: pd.DataFrame | None):
    """Decisions (every copy) whose features differ from the batch computation."""
    frame = labelled if labelled is not None else frame_of(txs)
    batch = compute_features(frame)
    batch.index = frame["TRANSACTION_ID"].to_numpy()
    by_family: Counter[str] = Counter()
    examples = []
    bad_decisions = 0
    for d in decisions:
        tx_id = d.get("transaction_id")
        if tx_id not in batch.index:
            continue
        want = batch.loc[tx_id]
        wrong = [
            name
            for name in ALL_FEATURES
            if not math.isclose(d["features"][name], want[name], rel_tol=1e-9, abs_tol=1e-9)
        ]
        if wrong:
            bad_decisions += 1
            by_family.update({feature_family(n) for n in wrong})
            if len(examples) < 3:
                examples.append(
                    {n: (d["features"][n], float(want[n])) for n in wrong[:3]}
                    | {"transaction_id": tx_id}
                )
    return bad_decisions, dict(by_family), examples


def check_card_states(
    stack: ChaosStack, txs: list[Transaction], sample: int = 60, seed: int = 0
) -> dict:
    """Sampled cards' table state through every alive worker's web view vs the batch state.

    A worker that does not own the card's partition answers through faust's table_route
    (it forwards the request to the owner), so `routed` counts those answers.
    """
    expected = batch_card_states(txs)
    rng = random.Random(seed)
    cards = rng.sample(sorted(expected), min(sample, len(expected)))
    owners = stack.owners()
    alive = [w for w in stack.workers.values() if w.alive]
    checked = mismatched = routed = unanswered = 0
    examples = []
    with httpx.Client(timeout=10) as client:
        for card in cards:
            owner = owners.get(card_partition(card, stack.partitions))
            for worker in alive:
                try:
                    response = client.get(f"{worker.url}/state/cards/{card}/")
                    state = response.json().get("state")
                except (httpx.HTTPError, ValueError):
                    unanswered += 1
                    continue
                checked += 1
                if worker.name != owner:
                    routed += 1
                if state != expected[card]:
                    mismatched += 1
                    if len(examples) < 3:
                        got_ids = (state or [[], []])[1]
                        examples.append(
                            {
                                "card": card,
                                "asked": worker.name,
                                "owner": owner,
                                "missing_ids": sorted(set(expected[card][1]) - set(got_ids)),
                                "extra_ids": sorted(set(got_ids) - set(expected[card][1])),
                                "same_ids_in_order": got_ids == expected[card][1],
                            }
                        )
    return {
        "cards": len(cards),
        "answers": checked,
        "routed_answers": routed,
        "mismatched": mismatched,
        "unanswered": unanswered,
        "examples": examples,
    }


def check_store(db_url: str, expected_ids: set[int], timeout: float) -> dict:
    """The result store's view: rows per transaction id, waiting for the sink to catch up."""
    from aegis_app.serving.store import Store

    store = Store(db_url)
    try:
        deadline = time.monotonic() + timeout
        while True:
            ids = store.transaction_ids()
            if expected_ids <= set(ids) or time.monotonic() >= deadline:
                break
            time.sleep(1)
        counts = Counter(ids)
        return {
            "rows": len(ids),
            "missing": len(expected_ids - set(ids)),
            "unexpected": len(set(ids) - expected_ids),
            "doubled": sum(1 for c in counts.values() if c > 1),
        }
    finally:
        store.close()


async def read_all_async(broker_url: str, topic: str, timeout: float) -> list:
    """Every record of `topic`, up to the end of each partition as of the read.

    The end is the Fetch high watermark: on the embedded broker ListOffsets(LATEST) is too
    low (see aegis_app/faust_compat.py), so end_offsets() cannot tell when to stop.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=broker_host_port(broker_url),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        group_id=None,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    records: list = []
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        assignment = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not assignment:
            return records
        consumer.assign(assignment)
        await consumer.seek_to_beginning(*assignment)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=300, max_records=10_000)
            for messages in batch.values():
                records.extend(messages)
            done = True
            for tp in assignment:
                highwater = consumer.highwater(tp)
                if highwater is None or await consumer.position(tp) < highwater:
                    done = False
            if done and not batch:
                break
    finally:
        await consumer.stop()
    return records


def read_all(broker_url: str, topic: str, timeout: float = 60) -> list:
    return asyncio.run(read_all_async(broker_url, topic, timeout))


def wait_decided(
    broker_url: str,
    expected: set[int],
    timeout: float,
    give_up: Callable[[], bool] | None = None,
) -> list:
    """aegis.decisions, re-read until every expected transaction id is on it, the timeout,
    or `give_up()` says waiting is pointless (a worker that should run has died)."""
    deadline = time.monotonic() + timeout
    while True:
        records = read_all(broker_url, DECISIONS_TOPIC)
        seen = {int(r.key) for r in records if r.key and r.key.isdigit()}
        if expected <= seen or time.monotonic() >= deadline:
            return records
        if give_up is not None and give_up():
            return records
        time.sleep(3)


def summarize(
    stack: ChaosStack,
    sent: Sent,
    decision_records: list,
    letter_records: list,
    labelled: pd.DataFrame | None = None,
    store_timeout: float = 60,
    card_sample: int = 60,
) -> dict:
    valid_ids = {tx.transaction_id for tx in sent.transactions}
    decisions = [json.loads(r.value) for r in decision_records]
    per_id: dict[int, list[dict]] = defaultdict(list)
    for d in decisions:
        per_id[d["transaction_id"]].append(d)
    decided = valid_ids & set(per_id)
    conflicting = sum(
        1
        for copies in per_id.values()
        if len({(c["action"], json.dumps(c["features"], sort_keys=True)) for c in copies}) > 1
    )
    # Dead letters: each poison record is known by where it landed (partition, offset).
    letters = [json.loads(r.value) for r in letter_records]
    lettered: dict[tuple[int, int], list[dict]] = defaultdict(list)
    for letter in letters:
        if letter.get("source_topic") == TRANSACTIONS_TOPIC:
            lettered[(letter["partition"], letter["offset"])].append(letter)
    poison_missing = []
    poison_bad_payload = 0
    reasons: Counter[str] = Counter()
    for poison, partition, offset in sent.poison:
        found = lettered.get((partition, offset))
        if not found:
            poison_missing.append(poison.kind)
            continue
        letter = found[0]
        if not letter.get("reason"):
            poison_missing.append(poison.kind)
        if base64.b64decode(letter.get("payload_b64") or "") != poison.payload:
            poison_bad_payload += 1
        reasons[poison.kind] += 1
    poison_keys = {(p, o) for _, p, o in sent.poison}
    bad_decisions, by_family, examples = check_features(sent.transactions, decisions, labelled)
    result = {
        "sent": len(valid_ids),
        "source_resends": sent.resent,
        "decided": len(decided),
        "lost": len(valid_ids - decided),
        # Where the lost ones were: their aegis.transactions partitions and first ids.
        "lost_by_partition": _lost_by_partition(
            sent.transactions, valid_ids - decided, stack.partitions
        ),
        "lost_ids_sample": sorted(valid_ids - decided)[:20],
        "doubled_after_dedup": 0,  # by construction on the topic view; the store's own below
        "topic_duplicates": len(decisions) - len(per_id),
        "conflicting_duplicates": conflicting,
        "unexpected_decisions": len(set(per_id) - valid_ids),
        "poison_sent": len(sent.poison),
        "dead_lettered": len(poison_keys & set(lettered)),
        "dead_letter_duplicates": sum(len(v) - 1 for v in lettered.values()),
        "poison_not_dead_lettered": len(poison_missing),
        "dead_letter_payload_mismatches": poison_bad_payload,
        "poison_kinds": dict(sorted(reasons.items())),
        "feature_mismatches": bad_decisions,
        "feature_mismatches_by_family": by_family,
        "feature_mismatch_examples": examples,
    }
    result["card_state"] = check_card_states(stack, sent.transactions, card_sample)
    if stack.db_url is not None:
        store = check_store(stack.db_url, valid_ids, store_timeout)
        result["store"] = store
        result["doubled_after_dedup"] = store["doubled"]
        result["store_checked"] = True
    else:
        result["store_checked"] = False
    alive = [w.name for w in stack.workers.values() if w.alive]
    result["workers_alive"] = len(alive)
    result["workers_expected_up"] = sum(1 for w in stack.workers.values() if w.expected_up)
    result["workers_crashed"] = stack.crashed()
    result["crash_log_lines"] = stack.crash_lines()
    return result


# --------------------------------------------------------------------------- chaos run


@dataclass
class ChaosConfig:
    transactions: int = 20_000
    workers: int = 2
    seconds: float = 120.0
    poison: int = 10_000
    faults: tuple[str, ...] = FAULTS
    broker_pause_s: float = 8.0
    partitions: int = 4
    rebalance_timeout: float = 6.0
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
    """A full chaos run; returns the figures (see the module docstring)."""
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


# --------------------------------------------------------------------------- soak


@dataclass
class SoakConfig:
    minutes: float = 10.0
    rate: float = 100.0
    workers: int = 2
    event_days: int = 90
    partitions: int = 4
    rebalance_timeout: float = 6.0
    model_dir: Path | None = None
    root: Path | None = None
    seed: int = 0
    sample_every_s: float = 30.0
    keep: bool = False


def state_horizon_days(delay_days: int = 7) -> int:
    """Days of event time after which no state may grow: the terminal state keeps the last
    30 + 2 x delay days (docs/FEATURES.md), the card state 30."""
    return max(WINDOWS_DAYS) + 2 * delay_days


def soak(config: SoakConfig, report: Callable[[dict], None] | None = None) -> dict:
    root = Path(config.root or tempfile.mkdtemp(prefix="aegis-soak-"))
    root.mkdir(parents=True, exist_ok=True)
    model_dir = Path(config.model_dir or root / "models")
    ensure_model(model_dir)
    n = int(config.rate * config.minutes * 60)
    frame = soak_frame(n, config.event_days, config.seed)
    rows = list(iter_frame(frame))
    items = list(publication_order(rows, 7))
    items = [(k, v) for k, v in items if k in ("tx", "label")]
    n_tx = sum(1 for k, _ in items if k == "tx")
    rate = len(items) / (config.minutes * 60)  # labels ride along at the same pace
    stack = ChaosStack(root, model_dir, config.partitions, config.rebalance_timeout)
    samples: list[dict] = []
    first_ts = int(rows[0][1].ts)
    horizon = state_horizon_days()
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
        labelled = frame[
            [
                "TRANSACTION_ID",
                "TX_DATETIME",
                "CUSTOMER_ID",
                "TERMINAL_ID",
                "TX_AMOUNT",
                "TX_FRAUD",
            ]
        ]
        bad, by_family, _examples = check_features(sent.transactions, decisions, labelled)
        result = {
            "minutes": config.minutes,
            "tx_rate": config.rate,
            "messages_per_s": round(rate, 1),  # transactions + their labels
            "transactions": n_tx,
            "labels": sent.labels,
            "event_days": round((sent.transactions[-1].ts - sent.transactions[0].ts) / DAY, 1),
            "cards": int(frame["CUSTOMER_ID"].nunique()),
            "terminals": int(frame["TERMINAL_ID"].nunique()),
            "decided": len(expected & {d["transaction_id"] for d in decisions}),
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


def soak_verdict(samples: list[dict], horizon_days: int, tolerance: float = 0.15) -> dict:
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
