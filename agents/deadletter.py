"""Dead letters: a record that cannot be processed is kept, raw, with the reason."""

from __future__ import annotations

import base64
import logging
import time
from typing import Any

import faust

from agents.counters import WorkerCounters

log = logging.getLogger(__name__)


def dead_letter_record(
    payload: bytes | None, reason: str, source: str, message: Any = None, now_ms: int | None = None
) -> tuple[bytes, dict[str, Any]]:
    """The key and value of the dead letter for `payload` (`message`: the Kafka message it
    came in, if any, for its partition, offset and key)."""
    record = {
        "reason": reason,
        "source_topic": source,
        "partition": getattr(message, "partition", None),
        "offset": getattr(message, "offset", None),
        "key_b64": _b64(getattr(message, "key", None)),
        "payload_b64": _b64(payload),
        "payload_bytes": len(payload) if payload is not None else 0,
        "refused_at_ms": int(time.time() * 1000) if now_ms is None else now_ms,
    }
    key = f"{source}/{record['partition']}/{record['offset']}".encode()
    return key, record


class DeadLetters:
    """Publishes dead letters on aegis.deadletter and counts them."""

    def __init__(self, topic: faust.TopicT, counters: WorkerCounters) -> None:
        self.topic = topic
        self.counters = counters

    async def send(
        self, payload: bytes | None, reason: str, source: str, event=None, message=None
    ) -> None:
        """Publish the raw payload and why it was refused; never raises on bad input.
        `message` (or a stream `event`'s): the Kafka message it came in."""
        message = message if message is not None else getattr(event, "message", None)
        key, record = dead_letter_record(payload, reason, source, message)
        await self.topic.send(key=key, value=record)
        self.counters.counts["dead_letters"] += 1
        log.warning("dead letter from %s: %s", source, reason)


def _b64(data: bytes | None) -> str | None:
    return base64.b64encode(data).decode("ascii") if isinstance(data, bytes) else None
