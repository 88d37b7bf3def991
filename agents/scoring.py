"""Micro-batch scoring: events wait at most `score_batch_ms` for their batch, models
run vectorised in a worker thread (never on the event loop), then each transaction gets
exactly one decision on aegis.decisions (and aegis.alerts unless allowed).

Model updates: a promotion or rollback announced on aegis.model-updates wakes the scorer
(aegis_app/model_updates.py), which re-reads ACTIVE and swaps the bundle between two
batches, so every batch is scored wholly by one version and no queued transaction is
dropped or scored twice. ACTIVE is also polled every MODEL_POLL_SECONDS, the fallback for
a missed announcement.

Rules: the rule and list changes published on aegis.rules reach the scorer through
aegis_app/kafka/rules_listener.py; the scorer compiles them and swaps its rule set between
two batches too (models/rules/live.py), and scores nothing before it has read the rules
as they stand. Each decision names the rules that matched; the hits and runtime errors of
every rule are counted (agents/counters.py, shown by /metrics).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import faust

from aegis_app.core.config import Config
from aegis_app.core.messages import ScoreRequest
from aegis_app.core.settings import ALERTS_TOPIC, DECISIONS_TOPIC, Settings
from aegis_app.kafka import raw_producer
from aegis_app.kafka.clients import KafkaConnection
from aegis_app.kafka.model_updates import WORKER_POLL_SECONDS, ModelUpdatesListener
from aegis_app.kafka.rules_listener import RuleUpdatesListener
from agents.counters import WorkerCounters
from models.decisions.decision import build_decisions
from models.decisions.policy import ALLOW, Rules
from models.detectors.bundle import ModelBundle
from models.lifecycle.active_model import LOADED, REFUSED, SWAPPED, ActiveModel
from models.rules.live import LiveRules
from models.rules.vocabulary import Vocabulary
from tables.engine import StreamEngine

log = logging.getLogger(__name__)
# Announcements make swaps prompt; the poll only bounds how stale a worker can get.
MODEL_POLL_SECONDS = WORKER_POLL_SECONDS
# How often an idle scorer looks for a pending announcement (no batch to wait for).
IDLE_CHECK_SECONDS = 0.5
# Submissions (each a fetch's requests) that may wait before the stage has to. Few: what
# waits here only waits longer under overload (8: a burst's first decision 0.50-0.63 s
# after it began, p50 1.7-2.0 s flat out; 2: 0.35 s and 1.5 s, throughput the same within
# the machine's noise; BENCHMARKS.md 2026-12-05, third session).
QUEUED_SUBMISSIONS = 2


class MicroBatchScorer:
    def __init__(
        self,
        app: faust.App,
        counters: WorkerCounters,
        model_dir: Path,
        batch_size: int,
        max_wait_s: float,
        rules: Rules,
        poll_seconds: float = MODEL_POLL_SECONDS,
        entity_keys: Callable[[Mapping], dict[str, str | None]] | None = None,
        config: Config | None = None,
    ) -> None:
        self.app = app
        self.counters = counters
        self.model_dir = Path(model_dir)
        self.batch_size = batch_size
        self.max_wait_s = max_wait_s
        self.poll_seconds = poll_seconds
        # Whole fetches' requests, in order; a full queue blocks the stage (back-pressure).
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=QUEUED_SUBMISSIONS)
        self.waiting = 0  # transactions in the queue (/health/ scoring_queue)
        # The worker's config: a model trained with another one is refused, naming the change.
        self.model = ActiveModel(model_dir, config=config)
        self.last_swap: dict | None = None
        # The rules file's rules, then the published ones as the listener offers them.
        self.rules = LiveRules.of(Vocabulary.from_config(self.model.config), rules)
        # Each decision names its entities' keys (labels need them): StreamEngine.keys.
        self.entity_keys = entity_keys
        # Set by register(): the listener whose status /health/ shows.
        self.updates_listener: ModelUpdatesListener | None = None
        self.rules_listener: RuleUpdatesListener | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aegis-score")
        self._woken = asyncio.Event()
        self._last_poll = float("-inf")

    async def submit(self, request: ScoreRequest, acknowledge: Callable[[], object]) -> None:
        """Queue `request`; `acknowledge()` is called once its decision is published (the
        input message's offset may then be committed)."""
        await self.submit_many([(request, acknowledge)])

    async def submit_many(self, items: list[tuple[ScoreRequest, Callable[[], object]]]) -> None:
        """Queue a fetch's (request, acknowledge) pairs in one step (submit, for each)."""
        if items:
            # A full queue blocks the caller: back-pressure instead of unbounded memory.
            await self.queue.put(items)
            self.waiting += len(items)

    def wake(self, announcement: dict | None) -> None:
        """A model update was announced (None: just check): re-read ACTIVE before the next
        batch. Called on the event loop by the model-updates listener."""
        if announcement is not None:
            self.counters.counts["model_announcements"] += 1
            log.info(
                "model update announced: %s -> %s (%s)",
                announcement.get("previous"),
                announcement.get("version"),
                announcement.get("reason"),
            )
        self._woken.set()

    def rules_changed(self, messages: list[dict]) -> None:
        """The rules as they now stand on aegis.rules: applied before the next batch.
        Called on the event loop by the rules listener."""
        self.counters.counts["rule_updates"] += 1
        self.rules.offer(messages)

    async def apply_rules(self) -> None:
        """Compile the offered rules (off the event loop) and swap them in. Only ever
        called between batches, so a batch never sees two rule sets."""
        messages = self.rules.take()
        if messages is None:
            return
        built = await asyncio.get_running_loop().run_in_executor(
            self._executor, self.rules.apply, messages
        )
        self.counters.counts["rule_swaps"] += 1
        self.counters.counts["rules_skipped"] += len(built.skipped)

    def reload_due(self) -> bool:
        return (
            self.bundle is None
            or self._woken.is_set()
            or time.monotonic() - self._last_poll >= self.poll_seconds
        )

    async def reload(self) -> None:
        """Re-read ACTIVE (off the event loop) and swap if it changed. Only ever called
        between batches, so a batch never sees two versions."""
        trigger = "announcement" if self._woken.is_set() else "poll"
        self._woken.clear()  # a wake arriving during the load triggers another check
        self._last_poll = time.monotonic()
        await asyncio.get_running_loop().run_in_executor(self._executor, self.maybe_reload, trigger)

    @property
    def bundle(self) -> ModelBundle | None:
        return self.model.bundle

    @property
    def loaded_at(self) -> str | None:
        return self.model.loaded_at

    def maybe_reload(self, trigger: str = "poll") -> None:
        """Load the active model version if it changed; a refused one leaves the old."""
        change = self.model.refresh()
        counts = self.counters.counts
        if change.outcome == REFUSED:
            counts["model_refusals"] += 1
        elif change.outcome == LOADED:
            counts["model_loads"] += 1
            log.info("scoring with model version %s", change.version)
        elif change.outcome == SWAPPED:
            counts["model_loads"] += 1
            counts["model_swaps"] += 1
            counts[f"model_swaps_on_{trigger}"] += 1
            self.last_swap = {
                "from": change.previous,
                "to": change.version,
                "at": self.loaded_at,
                "trigger": trigger,
            }
            log.info("model swap %s -> %s (on %s)", change.previous, change.version, trigger)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self.reload_due():
                await self.reload()
            if self.rules.pending:
                await self.apply_rules()
            if self.bundle is None:
                await asyncio.sleep(1.0)  # no model yet: events wait, none is lost
                continue
            if not self.rules.ready:
                await asyncio.sleep(0.1)  # the rules not read yet: events wait likewise
                continue
            try:
                # Bounded wait, so an idle worker still acts on an announcement promptly.
                batch = list(await asyncio.wait_for(self.queue.get(), IDLE_CHECK_SECONDS))
            except TimeoutError:
                continue
            # Whole submissions until the batch has batch_size (it may pass it by the last
            # one's size) or max_wait_s is up.
            deadline = loop.time() + self.max_wait_s
            while len(batch) < self.batch_size:
                if not self.queue.empty():  # take what is waiting without a timer
                    batch += self.queue.get_nowait()
                    continue
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                try:
                    batch += await asyncio.wait_for(self.queue.get(), timeout)
                except TimeoutError:
                    break
            self.waiting -= len(batch)
            if self._woken.is_set():
                await self.reload()  # announced while this batch formed: score it with the new
            if self.rules.pending:
                await self.apply_rules()  # likewise for rules
            bundle = self.bundle
            results = await loop.run_in_executor(self._executor, self._score, bundle, batch)
            decisions, alerts = [], []
            for (request, _), (decision, record) in zip(batch, results):
                key = str(request.tx["transaction_id"]).encode()
                decisions.append((key, record))
                self.counters.counts[f"decisions_{decision['action']}"] += 1
                self.counters.count_rules(decision)
                if decision["action"] != ALLOW:
                    alerts.append((key, record))
                    self.counters.recent_alerts.append(decision)
            await raw_producer.send_many(self.app, DECISIONS_TOPIC, decisions)
            await raw_producer.send_many(self.app, ALERTS_TOPIC, alerts)
            for _, acknowledge in batch:
                acknowledge()

    def _score(self, bundle: ModelBundle, batch: list) -> list[tuple[dict, bytes]]:
        """Decisions and their record bytes (encoded here, in the thread, not on the loop)."""
        started, cpu = time.perf_counter(), time.thread_time()
        decisions = build_decisions(
            bundle,
            self.rules.rule_set,
            self.rules.vocabulary,
            [(r.tx, r.features, r.ingested_ms) for r, _ in batch],
            entity_keys=self.entity_keys,
        )
        encoded = [(decision, raw_producer.dumps(decision)) for decision in decisions]
        self.counters.counts["scored"] += len(batch)
        self.counters.counts["score_batches"] += 1
        self.counters.counts["score_us_total"] += int((time.perf_counter() - started) * 1e6)
        self.counters.counts["score_cpu_us_total"] += int((time.thread_time() - cpu) * 1e6)
        return encoded

    def model_status(self) -> dict:
        """The model part of the worker's /health/."""
        return {
            "version": self.bundle.version if self.bundle else None,
            "loaded_at": self.loaded_at,
            "last_swap": self.last_swap,
            "poll_seconds": self.poll_seconds,
            "updates_listener": self.updates_listener.status if self.updates_listener else None,
        }

    def rules_status(self) -> dict:
        """The rules part of the worker's /health/: what runs, what was skipped and why."""
        listener = self.rules_listener
        return {**self.rules.status(), "listener": listener.status if listener else None}


def register(
    app: faust.App, settings: Settings, counters: WorkerCounters, engine: StreamEngine
) -> MicroBatchScorer:
    """The worker's scorer and model-updates listener, run as tasks of `app`."""
    scorer = MicroBatchScorer(
        app,
        counters,
        settings.model_dir,
        settings.score_batch_size,
        settings.score_batch_ms / 1000,
        Rules.from_file(settings.rules_file),
        entity_keys=engine.keys,
        config=engine.plan.config,
    )
    # Every worker hears every announcement (no consumer group), see
    # aegis_app/kafka/model_updates.py.
    # Paced like every consumer of the worker (the fetch interval travels with it).
    listener = ModelUpdatesListener(KafkaConnection.from_settings(settings), scorer.wake)
    scorer.updates_listener = listener
    # Likewise every worker reads every rule change (aegis_app/kafka/rules_listener.py).
    rules_listener = RuleUpdatesListener(
        KafkaConnection.from_settings(settings), scorer.rules_changed
    )
    scorer.rules_listener = rules_listener
    scorer.rules.expect_published()

    @app.task
    async def run_scorer() -> None:
        await scorer.run()

    @app.task
    async def listen_for_model_updates() -> None:
        await listener.run()

    @app.task
    async def listen_for_rule_updates() -> None:
        await rules_listener.run()

    return scorer
