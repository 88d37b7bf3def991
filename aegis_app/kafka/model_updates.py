"""Model promotions and rollbacks announced on aegis.model-updates, heard by every worker.

The announcement is the activation entry of the registry (models/registry.activate_version:
version, previous, reason, at, plus model_dir) as JSON. It is only a wake-up: whoever
receives it re-reads MODEL_DIR/ACTIVE, the durable truth, so a lost, repeated or reordered
announcement can never leave a process on a wrong version; the ACTIVE poll stays as the
fallback.

The listener reads without a consumer group (aegis_app/kafka/topic_listener.py), assigned
to every partition of the topic and starting at its end: a group would hand each
announcement to one worker only, and history before start-up is irrelevant (a starting
worker reads ACTIVE anyway).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from aegis_app.core.settings import MODEL_UPDATES_TOPIC
from aegis_app.kafka import clients
from aegis_app.kafka.clients import Broker
from aegis_app.kafka.topic_listener import TopicListener

log = logging.getLogger(__name__)
# How often workers re-read ACTIVE without an announcement (agents/scoring.py).
WORKER_POLL_SECONDS = 30.0
# One key for every announcement: all land on one partition, in the order they were sent.
ANNOUNCEMENT_KEY = b"model-updates"
# Called with the decoded announcement, or None for "check ACTIVE now" (listener ready, or
# a record that did not decode: it still says that something changed).
WakeCallback = Callable[[dict | None], None]


def encode_announcement(entry: dict, model_dir: Path | str | None = None) -> bytes:
    """The activation entry as JSON bytes, with the registry it concerns."""
    payload = dict(entry)
    if model_dir is not None:
        payload["model_dir"] = str(Path(model_dir).resolve())
    if not payload.get("version"):
        raise ValueError("an announcement needs the version that became active")
    return json.dumps(payload, sort_keys=True, allow_nan=False).encode()


def decode_announcement(value: bytes | None) -> dict | None:
    """The announcement, or None when the record is not a JSON object naming a version."""
    try:
        payload = json.loads(value or b"")
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("version"), str):
        return None
    return payload


async def announce_async(
    broker_url: Broker, entry: dict, model_dir: Path | str | None = None, timeout: float = 10.0
) -> None:
    """Publish one announcement and wait for the broker's ack (raises if it cannot)."""
    value = encode_announcement(entry, model_dir)
    producer = clients.producer(
        broker_url,
        acks="all",
        request_timeout_ms=int(timeout * 1000),
        enable_idempotence=False,
    )

    async def publish() -> None:
        await producer.start()
        await producer.send_and_wait(MODEL_UPDATES_TOPIC, value=value, key=ANNOUNCEMENT_KEY)

    try:
        await asyncio.wait_for(publish(), timeout)
    finally:
        await producer.stop()


def announce(
    broker_url: Broker, entry: dict, model_dir: Path | str | None = None, timeout: float = 10.0
) -> None:
    """Synchronous `announce_async`, for the command line."""
    asyncio.run(announce_async(broker_url, entry, model_dir, timeout))


def announce_or_warn(broker_url: Broker, entry: dict, model_dir: Path | str, who: str) -> bool:
    """Announce an activation from a command; if the broker cannot take it, say on stderr
    that ACTIVE has changed anyway and workers switch at their next poll. True if announced."""
    try:
        announce(broker_url, entry, model_dir)
        return True
    except Exception as exc:  # noqa: BLE001 - any broker failure: ACTIVE still changed
        print(
            f"{who}: warning: could not announce on {MODEL_UPDATES_TOPIC} via {broker_url} "
            f"({exc!r}); {entry['version']} is active in {model_dir} and workers pick it up on "
            f"their next poll (within {WORKER_POLL_SECONDS:.0f} s)",
            file=sys.stderr,
        )
        return False


class ModelUpdatesListener(TopicListener):
    """Calls `on_wake` for every announcement on aegis.model-updates, for as long as it runs
    (from the end of the topic: history before start-up is irrelevant). Broker trouble is
    retried (aegis_app/kafka/topic_listener.py); ACTIVE is still polled meanwhile."""

    def __init__(
        self,
        broker_url: Broker,
        on_wake: WakeCallback,
        topic: str = MODEL_UPDATES_TOPIC,
        retry_s: float = 2.0,
    ) -> None:
        super().__init__(broker_url, topic, retry_s)
        self.on_wake = on_wake

    async def listen(self, consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> None:
        # On Tansu the "end" may be the start of the last record batch, so an old
        # announcement can come again: harmless, it only makes us re-read ACTIVE.
        await consumer.seek_to_end(*partitions)
        for tp in partitions:
            await consumer.position(tp)  # resolve the end now, not at the first fetch
        self.status = "listening"
        self.ready.set()
        log.info("listening for model updates on %s (%d partitions)", self.topic, len(partitions))
        # Anything announced before we were positioned is missed: check ACTIVE once.
        self._wake(None)
        while True:
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                for record in records:
                    self.received += 1
                    self._wake(decode_announcement(record.value))

    def _wake(self, announcement: dict | None) -> None:
        try:
            self.on_wake(announcement)
        except Exception:  # a failing receiver must not tear down the consumer
            log.exception("model-updates receiver failed on %r", announcement)
