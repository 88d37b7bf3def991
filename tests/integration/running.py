"""A broker and a worker for an integration test, started and always stopped:

    with own_broker(tmp_path) as broker, running_worker(broker, tmp_path, models) as worker:
        ...  # worker.web answers /health/ with 200: model loaded, rules read

Each test module that needs empty topics starts a broker of its own (the session's
`broker` fixture keeps every topic of the session)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from aegis_app.harness.embedded_broker import EmbeddedBroker, free_port
from aegis_app.harness.stack import ManagedProcess, start_worker, wait_http_ok


@dataclass(frozen=True)
class RunningWorker:
    process: ManagedProcess
    web: str  # its web view, http://127.0.0.1:PORT

    @property
    def alive(self) -> bool:
        return self.process.alive

    def log_tail(self, lines: int = 30) -> str:
        return self.process.log_tail(lines)


@contextmanager
def own_broker(root: Path) -> Iterator[EmbeddedBroker]:
    """An embedded broker of the test's own, its log in `root`."""
    broker = EmbeddedBroker(port=free_port(), log_path=root / "broker.log")
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()


@contextmanager
def running_worker(
    broker: EmbeddedBroker,
    root: Path,
    model_dir: Path,
    env: dict[str, str] | None = None,
    ready_timeout: float = 120,
) -> Iterator[RunningWorker]:
    """`aegis worker` on `broker` (state and log in `root`), once its /health/ answers 200."""
    web_port = free_port()
    process = start_worker(
        broker.url, root / "state", web_port, model_dir, root / "worker.log", env=env
    )
    try:
        web = f"http://127.0.0.1:{web_port}"
        wait_http_ok(f"{web}/health/", ready_timeout, process)
        yield RunningWorker(process, web)
    finally:
        process.stop()
