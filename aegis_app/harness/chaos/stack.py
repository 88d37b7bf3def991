"""The processes of a chaos run: one embedded broker, named worker processes (killed,
stopped and restarted on purpose) and the decision sink, all stopped by `ChaosStack.close()`;
plus what the soak samples of them (RSS, RocksDB directory size, live table state)."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from aegis_app.core import config as configs
from aegis_app.core.settings import TRANSACTIONS_TOPIC
from aegis_app.harness.embedded_broker import EmbeddedBroker, free_port
from aegis_app.harness.stack import ManagedProcess, aegis_command, start_worker

log = logging.getLogger(__name__)


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
    # None: the workers' own default (`--rebalance-timeout` not given).
    rebalance_timeout: float | None = None
    # More AEGIS_* variables for the workers (e.g. AEGIS_SESSION_TIMEOUT_S).
    worker_env: dict[str, str] = field(default_factory=dict)
    broker: EmbeddedBroker | None = None
    workers: dict[str, Worker] = field(default_factory=dict)
    sink: ManagedProcess | None = None
    db_url: str | None = None
    events: list[dict] = field(default_factory=list)
    _t0: float = field(default_factory=time.monotonic)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def env(self) -> dict[str, str]:
        # The default preset, whatever config started the run: the chaos data is the
        # simulator's (aegis_app.harness.chaos.data).
        return {
            "AEGIS_PARTITIONS": str(self.partitions),
            "AEGIS_CONFIG": str(configs.resolve(None)),
        }

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
            env={**self.env, **self.worker_env},
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

    def start_sharing(self, names: tuple[str, ...], timeout: float = 240) -> dict[int, str]:
        """Start the named workers (the broker is up), wait until each is healthy and they
        share the input partitions (every one owned, each worker owning some); the owners."""
        for name in names:
            self.start_worker(name)
        for name in names:
            self.wait_healthy(name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            owners = self.owners()
            if len(owners) == self.partitions and set(owners.values()) == set(names):
                return owners
            time.sleep(0.5)
        raise TimeoutError(f"the workers did not share the partitions: {self.owners()}")

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
