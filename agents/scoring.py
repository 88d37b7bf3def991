"""Micro-batch scoring: events wait at most `score_batch_ms` for their batch, models
run vectorised in a worker thread (never on the event loop), then each transaction gets
exactly one decision on aegis.decisions (and aegis.alerts unless allowed).
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from aegis_app.app import app, settings
from agents import topics
from agents.counters import counts, recent_alerts
from models import registry
from models.bundle import ModelBundle
from models.decision import build_decisions
from models.policy import ALLOW, Rules

log = logging.getLogger(__name__)
MODEL_POLL_SECONDS = 5.0


class MicroBatchScorer:
    def __init__(self, model_dir: Path, batch_size: int, max_wait_s: float) -> None:
        self.model_dir = Path(model_dir)
        self.batch_size = batch_size
        self.max_wait_s = max_wait_s
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=batch_size * 4)
        self.bundle: ModelBundle | None = None
        self.rules = Rules.from_file(settings.rules_file)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aegis-score")

    async def submit(self, stream, event, tx: dict, features: dict, ingested_ms) -> None:
        # A full queue blocks the agent: back-pressure instead of unbounded memory.
        await self.queue.put((stream, event, tx, features, ingested_ms))

    def maybe_reload(self) -> None:
        """Load the active model version if it changed; a refused one leaves the old."""
        version = registry.active_version(self.model_dir)
        if version is None or (self.bundle is not None and self.bundle.version == version):
            return
        try:
            self.bundle = registry.load(self.model_dir, version)
            counts["model_loads"] += 1
            log.info("scoring with model version %s", version)
        except registry.ModelRefused as exc:
            counts["model_refusals"] += 1
            log.error(
                "model refused, keeping %s: %s", self.bundle.version if self.bundle else "none", exc
            )

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        last_poll = 0.0
        while True:
            if time.monotonic() - last_poll > MODEL_POLL_SECONDS or self.bundle is None:
                await loop.run_in_executor(self._executor, self.maybe_reload)
                last_poll = time.monotonic()
                if self.bundle is None:
                    await asyncio.sleep(1.0)  # no model yet: events wait, none is lost
                    continue
            batch = [await self.queue.get()]
            deadline = loop.time() + self.max_wait_s
            while len(batch) < self.batch_size:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self.queue.get(), timeout))
                except TimeoutError:
                    break
            bundle = self.bundle
            results = await loop.run_in_executor(self._executor, self._score, bundle, batch)
            for (stream, event, tx, _features, _ingested), decision in zip(batch, results):
                key = str(tx["transaction_id"]).encode()
                await topics.decisions.send(key=key, value=decision)
                counts[f"decisions_{decision['action']}"] += 1
                if decision["action"] != ALLOW:
                    await topics.alerts.send(key=key, value=decision)
                    recent_alerts.append(decision)
                await stream.ack(event)

    def _score(self, bundle: ModelBundle, batch: list) -> list[dict]:
        started = time.perf_counter()
        decisions = build_decisions(
            bundle, self.rules, [(tx, features, ingested) for _, _, tx, features, ingested in batch]
        )
        counts["scored"] += len(batch)
        counts["score_batches"] += 1
        counts["score_us_total"] += int((time.perf_counter() - started) * 1e6)
        return decisions


scorer = MicroBatchScorer(
    settings.model_dir, settings.score_batch_size, settings.score_batch_ms / 1000
)


@app.task
async def run_scorer() -> None:
    await scorer.run()
