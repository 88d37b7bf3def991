"""Synchronous scoring for POST /v1/transactions, with the stream's own state and model.

* `WorkerState` reads each entity's packed state of a record from the worker's web view
  (GET /state/{entity}/{key}/, answered by the worker that owns the key);
  `features_from_states` hands them to the config's StreamEngine, which computes the
  record's features exactly as the stream's stages do. The engine's new states are
  dropped: the API never writes state, the stream does when the record reaches it.
* `ApiScorer` scores with the active ModelBundle (reloaded when ACTIVE changes) and the
  rules the workers run (the rules file's and those on aegis.rules, swapped between
  batches: models/rules/live.py) through models.decisions.decision.build_decisions, the
  function shared with the stream. Concurrent
  requests are scored together (one model call per batch: on the loop for a few rows,
  in a worker thread for more, or when a model may have to be loaded).
* `KafkaPublisher` puts the transaction on aegis.transactions (the codec's bytes, keyed by
  card), so the stream updates its state and records the official decision, labels on
  aegis.labels, and rule and list changes on aegis.rules.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import aiohttp
from aiokafka import AIOKafkaProducer

from aegis_app.core.config import Config
from aegis_app.core.labels import Label
from aegis_app.core.settings import RULES_TOPIC, TRANSACTIONS_TOPIC
from aegis_app.kafka import clients, rule_updates
from aegis_app.kafka.clients import Broker
from aegis_app.kafka.producer import send_label
from models.decisions.decision import build_decisions
from models.decisions.policy import Rules
from models.detectors.bundle import ModelBundle
from models.lifecycle.active_model import LOADED, SWAPPED, ActiveModel
from models.rules.live import LiveRules
from models.rules.vocabulary import Vocabulary
from tables.engine.plan import RecordError
from tables.engine.state import StateError
from tables.engine.stream import Features, StreamEngine

log = logging.getLogger(__name__)
MODEL_POLL_SECONDS = 1.0
# A batch this small is scored on the event loop: the packed numpy models take ~0.3 ms for
# it, less than a hand-off to the scoring thread costs under load (GIL waits; the score
# stage's mean was 4.7-9.5 ms at 200 requests/s, BENCHMARKS.md). Larger batches, and any
# batch that may load a model, still go to the thread.
INLINE_BATCH_MAX = 4


class Unavailable(RuntimeError):
    """A dependency (worker, model, broker) cannot serve the request; the API answers 503."""


class StateSource:
    """Where the stream's per-entity states are read: `state(entity, key)` is the packed
    value of one entity key (None when the stream holds none)."""

    async def state(self, entity: str, key: str) -> bytes | None:
        raise NotImplementedError

    async def states(self, keys: Mapping[str, str | None]) -> dict[str, bytes | None]:
        """The state of each entity key of a record, read at once (None: no key, or no state)."""
        wanted = [(entity, key) for entity, key in keys.items() if key is not None]
        values = await asyncio.gather(*(self.state(entity, key) for entity, key in wanted))
        found = {entity: value for (entity, _), value in zip(wanted, values)}
        return {entity: found.get(entity) for entity in keys}


class WorkerState(StateSource):
    """The worker web view: GET /state/{entity}/{key}/ -> {"entity", "key", "state":
    base64 of the packed state, or null}, from whichever worker owns the key.

    aiohttp rather than httpx here: these calls sit on every POST /v1/transactions, and
    aiohttp's client costs a fraction of httpx's CPU per request.
    """

    def __init__(self, worker_url: str, timeout: float = 2.0) -> None:
        self.worker_url = worker_url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Created on first use, inside the server's event loop.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                base_url=self.worker_url,
                timeout=self.timeout,
                connector=aiohttp.TCPConnector(limit=64, keepalive_timeout=30),
            )
        return self._session

    @staticmethod
    def path(entity: str, key: str) -> str:
        # Keys are the user's text (merchant names with spaces, commas, slashes): quoted
        # whole, so a "/" in a key stays inside its path segment.
        return f"/state/{quote(entity, safe='')}/{quote(key, safe='')}/"

    async def state(self, entity: str, key: str) -> bytes | None:
        path = self.path(entity, key)
        try:
            async with self._client().get(path) as response:
                if response.status != 200:
                    raise Unavailable(f"worker answered HTTP {response.status} for {path}")
                body = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Unavailable(f"worker at {self.worker_url} unreachable: {exc!r}") from None
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict) or "state" not in parsed:
            raise Unavailable(f"worker answered unreadable state for {path}")
        encoded = parsed["state"]
        if encoded is None:
            return None
        try:
            return base64.b64decode(encoded, validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise Unavailable(f"worker answered a state that is not base64 for {path}") from None

    async def healthy(self) -> bool:
        try:
            async with self._client().get("/health/") as response:
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


async def features_from_states(
    engine: StreamEngine, source: StateSource, record: Mapping
) -> Features:
    """The record's features from the stream's current state of each of its entities, as
    the stream would compute them were the record to arrive now. The engine's new states
    are dropped (the stream writes its own when the record reaches it)."""
    states = await source.states(engine.keys(record))
    try:
        features, _new_states = engine.observe(record, states)
    except StateError as exc:
        raise Unavailable(f"worker answered a state this config cannot read: {exc}") from None
    except RecordError as exc:  # the source reader let through what the engine refuses
        raise Unavailable(f"the feature engine refused the record: {exc}") from None
    return features


class ApiScorer:
    def __init__(
        self,
        model_dir: Path,
        rules: Rules,
        batch_size: int = 64,
        config: Config | None = None,
    ) -> None:
        """`config`: the features this API computes (default: the default preset); a
        model version trained with another config is refused, naming the difference."""
        self.model_dir = Path(model_dir)
        self.batch_size = batch_size
        self.model = ActiveModel(model_dir, config)
        # The rules file's rules, then the published ones as `rules_changed` offers them.
        self.rules = LiveRules.of(Vocabulary.from_config(self.model.config), rules)
        # Each decision names its key for every entity of the config (labels need them).
        self.entity_keys = StreamEngine(self.model.config).keys
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

    def rules_changed(self, messages: list[dict]) -> None:
        """The rules as they now stand on aegis.rules (aegis_app/kafka/rules_listener.py):
        applied before the next batch."""
        self.rules.offer(messages)

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

    async def decide(self, record: dict, features: Features, ingested_ms: int) -> dict:
        """The decision for one normalised record (batched with whatever else is waiting)."""
        if self._queue is None:
            raise Unavailable("scorer not started")
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((record, features, ingested_ms, future))
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
            messages = self.rules.take()
            if messages is not None:  # between two batches: compiled off the event loop
                await loop.run_in_executor(self._executor, self.rules.apply, messages)
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
        items = [(record, features, ms) for record, features, ms, _ in batch]
        rules = self.rules
        return build_decisions(
            bundle, rules.rule_set, rules.vocabulary, items, entity_keys=self.entity_keys
        )


class KafkaPublisher:
    """Transactions and labels onto Kafka; each send waits for the broker's ack."""

    def __init__(self, broker_url: Broker) -> None:
        self.broker_url = broker_url
        self.connection = clients.connection_of(broker_url)  # a bad URL fails here, at once
        self.producer: AIOKafkaProducer | None = None
        self._rules_topic_ready = False

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

    async def publish_transaction(self, payload: bytes, key: bytes) -> None:
        """One transaction's wire bytes (RecordCodec.encode), keyed by its card."""
        producer = await self._ensure()
        try:
            await (await producer.send(TRANSACTIONS_TOPIC, value=payload, key=key))
        except Exception as exc:  # noqa: BLE001
            raise Unavailable(f"could not publish the transaction: {exc!r}") from None

    async def publish_label(self, label: Label) -> None:
        producer = await self._ensure()
        try:
            await (await send_label(producer, label))
        except Exception as exc:  # noqa: BLE001
            raise Unavailable(f"could not publish the label: {exc!r}") from None

    async def publish_rule_change(self, key: bytes, value: bytes) -> None:
        """One rule or list version on aegis.rules (aegis_app.kafka.rule_updates), the
        topic created on first use (compacted, one partition)."""
        producer = await self._ensure()
        try:
            if not self._rules_topic_ready:
                await rule_updates.ensure_topic(self.connection)
                self._rules_topic_ready = True
            await (await producer.send(RULES_TOPIC, value=value, key=key))
        except Exception as exc:  # noqa: BLE001
            raise Unavailable(f"could not publish on {RULES_TOPIC}: {exc!r}") from None

    async def ready(self) -> bool:
        from aegis_app.kafka.admin import BrokerError, wait_for_broker_async

        try:
            await wait_for_broker_async(self.connection, timeout=2.0)
            return True
        except BrokerError:
            return False
