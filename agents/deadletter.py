"""Dead letters: a record that cannot be processed is kept, raw, with the reason."""

from __future__ import annotations

import base64
import logging
import time

from agents import topics
from agents.counters import counts

log = logging.getLogger(__name__)


async def dead_letter(payload: bytes | None, reason: str, source: str, event=None) -> None:
    """Publish the raw payload and why it was refused; never raises on bad input."""
    message = getattr(event, "message", None)
    record = {
        "reason": reason,
        "source_topic": source,
        "partition": getattr(message, "partition", None),
        "offset": getattr(message, "offset", None),
        "key_b64": _b64(getattr(message, "key", None)),
        "payload_b64": _b64(payload),
        "payload_bytes": len(payload) if payload is not None else 0,
        "refused_at_ms": int(time.time() * 1000),
    }
    key = f"{source}/{record['partition']}/{record['offset']}".encode()
    await topics.deadletter.send(key=key, value=record)
    counts["dead_letters"] += 1
    log.warning("dead letter from %s: %s", source, reason)


def _b64(data: bytes | None) -> str | None:
    return base64.b64encode(data).decode("ascii") if isinstance(data, bytes) else None
