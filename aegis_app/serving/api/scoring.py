"""Synchronous scoring for POST /v1/transactions, with the stream's own state and model.

* `WorkerState` reads the raw CardState/TerminalState values from the worker's web view;
  the API rebuilds them, calls `.observe` on the copies (never written back) and assembles
  the features with tables.features, exactly as the card and terminal stages do.
* `ApiScorer` scores with the active ModelBundle (reloaded when ACTIVE changes) through
  models.decisions.decision.build_decisions, the function shared with the stream. Concurrent
  requests are scored together (one model call per batch: on the loop for a few rows,
  in a worker thread for more, or when a model may have to be loaded).
* `KafkaPublisher` puts the transaction on aegis.transactions (keyed by card), so the
  stream updates its state and records the official decision, and labels on aegis.labels.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp
from aiokafka import AIOKafkaProducer

from aegis_app.core.labels import Label
from aegis_app.core.records import Transaction
from aegis_app.kafka import clients
from aegis_app.kafka.clients import Broker
from aegis_app.kafka.producer import send_label, send_transaction
from models.decisions.decision import build_decisions
from models.decisions.policy import Rules
from models.detectors.bundle import ModelBundle
from models.lifecycle.active_model import LOADED, SWAPPED, ActiveModel
from tables.features import CardState, TerminalState, assemble

log = logging.getLogger(__name__)
MODEL_POLL_SECONDS = 1.0
# A batch this small is scored on the event loop: the packed numpy models take ~0.3 ms for
# it, less than a hand-off to the scoring thread costs under load (GIL waits; the score
# stage's mean was 4.7-9.5 ms at 200 requests/s, BENCHMARKS.md). Larger batches, and any
# batch that may load a model, still go to the thread.
INLINE_BATCH_MAX = 4


class Unavailable(RuntimeError):
    """A dependency (worker, model, broker) cannot serve the request; the API answers 503."""


class RawStateSource:
    """A source of the stream's raw table values (`card`, `terminal`); the features of a
    new transaction are computed here from copies of them."""

    async def card(self, card_id: int) -> list | None:
        raise NotImplementedError

    async def terminal(self, terminal_id: int) -> list | None:
        raise NotImplementedError

    async def features(self, tx: Transaction, delay_days: int) -> dict[str, float]:
        card_value, terminal_value = await asyncio.gather(
            self.card(tx.customer_id), self.terminal(tx.terminal_id)
        )
        return features_from_state(tx, card_value, terminal_value, delay_days)


class Colocation:
    """How often the worker that owns a card could also give its terminal's features.

    With one worker (or card and terminal on the same one) a single request returns both,
    which halves the web requests on the workers and the API. When that mostly fails
    (several workers), asking one worker after the other would add a round trip, so the
    two are asked at once again, with a combined request now and then to notice a change.
    """

    def __init__(self, window: int = 64) -> None:
        self.window = window
        self._recent: deque[bool] = deque(maxlen=window)
        self._calls = 0

    def combine(self) -> bool:
        self._calls += 1
        if len(self._recent) < self.window // 2 or self._calls % self.window == 0:
            return True  # still learning, or a probe
        return 2 * sum(self._recent) >= len(self._recent)

    def record(self, served_both: bool) -> None:
        self._recent.append(served_both)


class WorkerState(RawStateSource):
    """The worker web view: the features of a new transaction computed by the workers that
    own its card and its terminal (GET /features/cards/{id}/, /features/terminals/{id}/),
    and raw table state (GET /state/cards/{id}/, /state/terminals/{id}/).

    aiohttp rather than httpx here: these calls sit on every POST /v1/transactions, and
    aiohttp's client costs a fraction of httpx's CPU per request.
    """

    def __init__(self, worker_url: str, timeout: float = 2.0) -> None:
        self.worker_url = worker_url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self.colocation = Colocation()

    def _client(self) -> aiohttp.ClientSession:
        # Created on first use, inside the server's event loop.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                base_url=self.worker_url,
                timeout=self.timeout,
                connector=aiohttp.TCPConnector(limit=64, keepalive_timeout=30),
            )
        return self._session

    async def _get_body(self, path: str, params: dict | None = None) -> dict:
        try:
            async with self._client().get(path, params=params) as response:
                if response.status != 200:
                    raise Unavailable(f"worker answered HTTP {response.status} for {path}")
                body = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Unavailable(f"worker at {self.worker_url} unreachable: {exc!r}") from None
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            raise Unavailable(f"worker answered unreadable state for {path}")
        return parsed

    async def _get(self, path: str, key: str = "state", params: dict | None = None):
        body = await self._get_body(path, params)
        if key not in body:
            raise Unavailable(f"worker answered unreadable state for {path}")
        return body[key]

    async def card(self, card_id: int) -> list | None:
        return await self._get(f"/state/cards/{card_id}/")

    async def terminal(self, terminal_id: int) -> list | None:
        return await self._get(f"/state/terminals/{terminal_id}/")

    async def features(self, tx: Transaction, delay_days: int) -> dict[str, float]:
        """Computed where the state lives: a few numbers cross the wire, not the state.
        The workers use their own label delay (the stream's)."""
        card_path = f"/features/cards/{tx.customer_id}/"
        card_query = {
            "tx": tx.transaction_id,
            "ts": tx.ts,
            "amount": repr(tx.tx_amount),
            "terminal": tx.terminal_id,
        }
        terminal_path = f"/features/terminals/{tx.terminal_id}/"
        terminal_query = {"tx": tx.transaction_id, "ts": tx.ts}
        if self.colocation.combine():
            body = await self._get_body(card_path, {**card_query, "with_terminal": 1})
            card, terminal = body.get("features"), body.get("terminal_features")
            self.colocation.record(terminal is not None)
            if terminal is None:  # the terminal lives on another worker
                terminal = await self._get(terminal_path, "features", terminal_query)
        else:
            card, terminal = await asyncio.gather(
                self._get(card_path, "features", card_query),
                self._get(terminal_path, "features", terminal_query),
            )
        if not isinstance(card, dict) or not isinstance(terminal, dict):
            raise Unavailable(f"worker answered unreadable features for {card_path}")
        return assemble(tx.tx_amount, tx.ts, card, terminal)

    async def healthy(self) -> bool:
        try:
            async with self._client().get("/health/") as response:
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def features_from_state(
    tx: Transaction, card_value: list | None, terminal_value: list | None, delay_days: int
) -> dict[str, float]:
    """The transaction's features from copies of the stream's state (never written back)."""
    card_value, terminal_value = copy.deepcopy(card_value), copy.deepcopy(terminal_value)
    card = CardState.from_value(card_value).observe(
        tx.transaction_id, tx.ts, tx.tx_amount, tx.terminal_id
    )
    terminal = TerminalState.from_value(terminal_value).observe(
        tx.transaction_id, tx.ts, delay_days
    )
    return assemble(tx.tx_amount, tx.ts, card, terminal)


class ApiScorer:
    def __init__(self, model_dir: Path, rules: Rules, batch_size: int = 64) -> None:
        self.model_dir = Path(model_dir)
        self.rules = rules
        self.batch_size = batch_size
        self.model = ActiveModel(model_dir)
        self._checked = 0.0
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aegis-api-score")

    def maybe_reload(self, force: bool = False) -> ModelBundle | None:
        """Load the active version if it changed; a refused version keeps the old one."""
        if not force and not self._reload_due():
            return self.bundle
        self._checked = time.monotonic()
        if self.model.refresh().outcome in (LOADED, SWAPPED):
            log.info("API scoring with model version %s", self.model.version)
        return self.model.bundle

    @property
    def bundle(self) -> ModelBundle | None:
        return self.model.bundle

    @property
    def last_error(self) -> str | None:
        return self.model.last_error

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._run(), name="aegis-api-scorer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def decide(self, tx: dict, features: dict[str, float], ingested_ms: int) -> dict:
        """The decision for one transaction (batched with whatever else is waiting)."""
        if self._queue is None:
            raise Unavailable("scorer not started")
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((tx, features, ingested_ms, future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._queue is not None
        while True:
            batch = [await self._queue.get()]
            # No extra wait: requests that arrive while a batch is scored form the next one.
            while len(batch) < self.batch_size and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            batch = [item for item in batch if not item[3].done()]
            if not batch:
                continue
            try:
                if len(batch) <= INLINE_BATCH_MAX and not self._reload_due():
                    decisions = self._score(batch)
                else:
                    decisions = await loop.run_in_executor(self._executor, self._score, batch)
            except Exception as exc:  # noqa: BLE001 - each waiting request gets the error
                for *_rest, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (*_rest, future), decision in zip(batch, decisions):
                if not future.done():
                    future.set_result(decision)

    def _reload_due(self) -> bool:
        """Would _score look at ACTIVE (and maybe load a model)? Never on the event loop."""
        return self.bundle is None or time.monotonic() - self._checked >= MODEL_POLL_SECONDS

    def _score(self, batch: list) -> list[dict]:
        bundle = self.maybe_reload()
        if bundle is None:
            raise Unavailable(f"no model loaded: {self.last_error}")
        return build_decisions(bundle, self.rules, [(tx, f, ms) for tx, f, ms, _ in batch])


class KafkaPublisher:
    """Transactions and labels onto Kafka; each send waits for the broker's ack."""

    def __init__(self, broker_url: Broker) -> None:
        self.broker_url = broker_url
        self.connection = clients.connection_of(broker_url)  # a bad URL fails here, at once
        self.producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        self.producer = clients.producer(
            self.connection,
            linger_ms=1,
            acks=1,
            enable_idempotence=False,
            request_timeout_ms=10_000,
        )
        try:
            await self.producer.start()
        except Exception as exc:  # noqa: BLE001 - aiokafka raises several types
            self.producer = None
            raise Unavailable(f"broker {self.broker_url} unreachable: {exc!r}") from None

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()
            self.producer = None

    async def _ensure(self) -> AIOKafkaProducer:
        if self.producer is None:
            await self.start()
        assert self.producer is not None
        return self.producer

    async def publish_transaction(self, tx: Transaction) -> None:
        producer = await self._ensure()
        try:
            await (await send_transaction(producer, tx))
        except Exception as exc:  # noqa: BLE001
            raise Unavailable(f"could not publish the transaction: {exc!r}") from None

    async def publish_label(self, label: Label) -> None:
        producer = await self._ensure()
        try:
            await (await send_label(producer, label))
        except Exception as exc:  # noqa: BLE001
            raise Unavailable(f"could not publish the label: {exc!r}") from None

    async def ready(self) -> bool:
        from aegis_app.kafka.admin import BrokerError, wait_for_broker_async

        try:
            await wait_for_broker_async(self.connection, timeout=2.0)
            return True
        except BrokerError:
            return False
