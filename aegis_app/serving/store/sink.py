"""The alert sink: aegis.decisions into the result store, exactly one row per transaction.

An aiokafka consumer (group "aegis-sink") reads aegis.decisions, aegis.alerts and
aegis.deadletter. Decisions are upserted in batches, and offsets are committed only after
the database write: at-least-once delivery plus an idempotent upsert by transaction id
gives exactly one row per transaction, through redeliveries, replays and restarts.
Alerts and dead letters are only counted (alerts are decisions the sink already stores).

It also reads aegis.labels: chargeback and replayed labels go into the labels table, where
retraining finds them (models/lifecycle/retraining.py), each with the card and entity keys
the label carries. Analyst labels are skipped here: the API stores each one itself when it
publishes it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from aegis_app.core import labels as label_records
from aegis_app.core.records import InvalidRecord, parse_datetime
from aegis_app.core.settings import (
    ALERTS_TOPIC,
    DEADLETTER_TOPIC,
    DECISIONS_TOPIC,
    LABELS_TOPIC,
)
from aegis_app.kafka import clients
from aegis_app.kafka.admin import ensure_topics_async
from aegis_app.kafka.clients import Broker
from aegis_app.serving.store.repository import Store, StoreError, parse_decided_at

log = logging.getLogger(__name__)
GROUP_ID = "aegis-sink"
TOPICS = (DECISIONS_TOPIC, ALERTS_TOPIC, DEADLETTER_TOPIC, LABELS_TOPIC)


class DecisionSink:
    """Consume decisions into `store`; `metrics` (optional) gets counts, latency and lag."""

    def __init__(
        self,
        broker_url: Broker,
        store: Store,
        *,
        partitions: int = 4,
        group_id: str = GROUP_ID,
        max_records: int = 1000,
        metrics: Any = None,
    ) -> None:
        self.broker_url = broker_url
        self.connection = clients.connection_of(broker_url)  # a bad URL fails here, at once
        self.store = store
        self.partitions = partitions
        self.group_id = group_id
        self.max_records = max_records
        self.metrics = metrics
        self.counts: Counter[str] = Counter()
        self.lag: int | None = None
        self.running = False
        self.last_error: str | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> asyncio.Task:
        """Run in the background of the current event loop (inside `aegis api`)."""
        self._task = asyncio.create_task(self.run(), name="aegis-sink")
        return self._task

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 15)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
            except Exception:  # noqa: BLE001 - the error was logged by run()
                pass

    async def run(self) -> None:
        """Consume until stop(); reconnects after broker errors."""
        while not self._stop.is_set():
            try:
                await self._consume()
            except (KafkaError, OSError, StoreError) as exc:
                self.running = False
                self.last_error = repr(exc)
                log.warning("sink: %r; retrying in 2 s", exc)
                try:
                    await asyncio.wait_for(self._stop.wait(), 2.0)
                except TimeoutError:
                    pass

    async def _consume(self) -> None:
        await ensure_topics_async(self.connection, TOPICS, self.partitions, strict=False)
        # Paced by the connection's fetch interval (the embedded broker's cost per fetch).
        consumer = clients.consumer(
            self.connection,
            *TOPICS,
            paced=True,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.max_records,
        )
        await consumer.start()
        self.running = True
        self.last_error = None
        try:
            while not self._stop.is_set():
                batch = await consumer.getmany(timeout_ms=500, max_records=self.max_records)
                records = [r for messages in batch.values() for r in messages]
                if records:
                    await self.handle(records)
                    await consumer.commit()  # only after the database write
                await self._update_lag(consumer)
        finally:
            self.running = False
            await consumer.stop()

    # ------------------------------------------------------------------ records

    async def handle(self, records: list) -> int:
        """Store the decisions and stream labels among `records`; count alerts and dead
        letters."""
        decisions, labels = [], []
        for record in records:
            if record.topic == LABELS_TOPIC:
                label = self._label(record)
                if label is not None:
                    labels.append(label)
                continue
            if record.topic == DEADLETTER_TOPIC:
                self.counts["dead_letters"] += 1
                if self.metrics is not None:
                    self.metrics.dead_letters.inc()
                continue
            if record.topic == ALERTS_TOPIC:
                self.counts["alerts"] += 1
                continue
            try:
                decision = json.loads(record.value)
                if not isinstance(decision, dict):
                    raise ValueError("not a JSON object")
            except (TypeError, ValueError):
                self.counts["unreadable"] += 1
                log.warning("sink: unreadable decision at %s/%s", record.partition, record.offset)
                continue
            decisions.append(decision)
        if labels:
            self.counts["labels"] += await asyncio.to_thread(self.store.add_stream_labels, labels)
        if not decisions:
            return 0
        stored = await asyncio.to_thread(self._store, decisions)
        self.counts["decisions"] += len(decisions)
        if self.metrics is not None:
            now = time.time()
            for decision in decisions:
                self.metrics.decisions.labels(action=str(decision.get("action"))).inc()
                ingested = decision.get("ingested_ms")
                if ingested is None:
                    continue
                try:
                    decided = parse_decided_at(decision.get("decided_at", now * 1000))
                except (StoreError, ValueError):
                    continue
                latency = decided.timestamp() - ingested / 1000
                self.metrics.decision_latency.observe(max(latency, 0.0))
        return stored

    def _label(self, record: Any) -> dict | None:
        """A stream label as the store keeps it, or None (analyst label, unreadable)."""
        try:
            label = label_records.parse(record.value)
        except InvalidRecord:
            # The worker dead-letters it with the reason; here it is only counted.
            self.counts["unreadable_labels"] += 1
            return None
        if label.source == "analyst":
            return None
        return {
            "transaction_id": label.transaction_id,
            "label": label.label,
            "source": label.source,
            "known_at": datetime.fromtimestamp(parse_datetime(label.known_at), UTC),
            "note": label.note,
            "card": label.card,
            "entities": label.entities,
        }

    def _store(self, decisions: list[dict]) -> int:
        try:
            return self.store.upsert_decisions(decisions)
        except StoreError:
            # One bad decision must not block the rest: store them one by one.
            stored = 0
            for decision in decisions:
                try:
                    stored += self.store.upsert_decisions([decision])
                except StoreError as exc:
                    self.counts["unstorable"] += 1
                    log.warning("sink: %s", exc)
            return stored

    async def _update_lag(self, consumer: AIOKafkaConsumer) -> None:
        lag = 0
        for tp in consumer.assignment():
            if tp.topic != DECISIONS_TOPIC:
                continue
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue
            try:
                position = await consumer.position(tp)
            except KafkaError:
                continue
            lag += max(highwater - position, 0)
        self.lag = lag
        if self.metrics is not None:
            self.metrics.sink_lag.set(lag)


def run_forever(broker_url: Broker, store: Store, partitions: int) -> int:
    """`aegis sink`: consume until SIGINT/SIGTERM."""
    import signal

    async def main() -> None:
        sink = DecisionSink(broker_url, store, partitions=partitions)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, sink._stop.set)
        print(f"aegis sink: {broker_url} -> {store.engine.url!r}", flush=True)
        await sink.run()

    asyncio.run(main())
    return 0
