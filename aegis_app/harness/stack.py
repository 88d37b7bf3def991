"""Running Aegis processes side by side: workers (and other servers) as child processes,
their health, and reading topics back. Used by `make demo`, `aegis bench`, and the tests.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from aiokafka import TopicPartition

from aegis_app.harness.lifeline import stop_with_parent_hook
from aegis_app.kafka import clients


@dataclass
class ManagedProcess:
    """A child process in its own process group, stopped with everything it started."""

    name: str
    args: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    # SIGTERM when the starting process dies, even by SIGKILL (aegis_app/harness/lifeline.py)
    stop_with_parent: bool = False
    proc: subprocess.Popen | None = None

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 (closed when the process is stopped)
        self.proc = subprocess.Popen(
            self.args,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
            start_new_session=True,
            preexec_fn=stop_with_parent_hook() if self.stop_with_parent else None,
        )
        log.close()
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, signum: int) -> None:
        if self.alive:
            os.killpg(self.proc.pid, signum)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM (a clean shutdown), then SIGKILL after `timeout`; returns the exit code."""
        if self.proc is None:
            return None
        if self.alive:
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        try:  # children that outlived the leader
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL the whole group at once: a crash, as far as everyone else can tell."""
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def aegis_command(*args: str) -> list[str]:
    """`aegis ...` run with this interpreter, so it works inside and outside the venv."""
    return [sys.executable, "-m", "aegis_app.cli.main", *args]


def start_worker(
    broker_url: str,
    data_dir: Path,
    web_port: int,
    model_dir: Path,
    log_path: Path,
    rebalance_timeout: float | None = None,
    env: dict[str, str] | None = None,
    stop_with_parent: bool = False,
) -> ManagedProcess:
    """`aegis worker` on 127.0.0.1; `rebalance_timeout` None: the worker's own default."""
    args = aegis_command(
        "worker",
        "--broker",
        broker_url,
        "--data-dir",
        str(data_dir),
        "--web-port",
        str(web_port),
        "--model-dir",
        str(model_dir),
    )
    if rebalance_timeout is not None:
        args += ["--rebalance-timeout", str(rebalance_timeout)]
    return ManagedProcess(
        f"worker:{web_port}", args, log_path, env or {}, stop_with_parent=stop_with_parent
    ).start()


def start_api(
    broker_url: str,
    port: int,
    db_url: str,
    token: str,
    model_dir: Path,
    worker_url: str,
    log_path: Path,
) -> ManagedProcess:
    """`aegis api` on 127.0.0.1 with its result-store sink."""
    args = aegis_command(
        "api",
        "--broker",
        broker_url,
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
        "--db-url",
        db_url,
        "--token",
        token,
        "--model-dir",
        str(model_dir),
        "--worker-url",
        worker_url,
    )
    return ManagedProcess(f"api:{port}", args, log_path).start()


def wait_http_ok(url: str, timeout: float, process: ManagedProcess | None = None) -> dict:
    """Poll `url` until it answers 200 with JSON; fail early if `process` died."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if process is not None and not process.alive:
            raise RuntimeError(f"{process.name} exited:\n{process.log_tail()}")
        try:
            response = httpx.get(url, timeout=2.0)
            if response.status_code == 200:
                return response.json()
            last = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.5)
    tail = process.log_tail() if process else ""
    raise TimeoutError(f"{url} not ready after {timeout:.0f}s ({last})\n{tail}")


async def read_topic_async(
    broker_url: str,
    topic: str,
    done: Callable[[list], bool],
    timeout: float,
) -> list:
    """All records of `topic` from the beginning until `done(records)` or the timeout."""
    consumer = clients.consumer(
        broker_url,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        group_id=None,
    )
    await consumer.start()
    records: list = []
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        deadline = time.monotonic() + timeout
        while not partitions and time.monotonic() < deadline:
            await consumer._client.force_metadata_update()  # the topic may be created later
            partitions = consumer.partitions_for_topic(topic) or set()
            await asyncio.sleep(0.2)
        assignment = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assignment)
        await consumer.seek_to_beginning(*assignment)
        while time.monotonic() < deadline and not done(records):
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            for messages in batch.values():
                records.extend(messages)
    finally:
        await consumer.stop()
    return records


def read_topic(broker_url: str, topic: str, done: Callable[[list], bool], timeout: float):
    return asyncio.run(read_topic_async(broker_url, topic, done, timeout))
