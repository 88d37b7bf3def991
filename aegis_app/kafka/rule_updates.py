"""Rule and list changes on aegis.rules, a compacted topic: its newest record per key is
the rule (or list) as it stands, so a worker that reads it from the beginning knows every
running rule and every list (docs/DEVELOPING.md "aegis.rules").

Keys: ``rule:<id>`` and ``list:<name>``. Values: JSON, ``{"kind": "rule", ...}`` (the rule
version: id, version, state, expression, action, priority, reason, the lists it reads, who,
when, why) or ``{"kind": "list", ...}`` (name, version, items, who, when, why). One
partition, so a list is on the topic before a rule that reads it is announced.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from aegis_app.core.settings import RULES_TOPIC
from aegis_app.kafka import admin
from aegis_app.kafka.clients import Broker

PARTITIONS = 1
TOPIC_CONFIGS = {"cleanup.policy": "compact"}
# Kafka's default largest message is 1 MB; a list must fit one with room to spare.
MAX_MESSAGE_BYTES = 900_000
RULE_FIELDS = (
    "rule_id",
    "version",
    "state",
    "expression",
    "action",
    "priority",
    "reason",
    "changed_by",
    "changed_at",
    "note",
)
LIST_FIELDS = ("name", "version", "items", "changed_by", "changed_at", "note")


def rule_message(version: Mapping[str, Any], lists: Sequence[str]) -> tuple[bytes, bytes]:
    """(key, value) announcing one rule version (a store row) that reads `lists`."""
    value = {"kind": "rule", **{name: version[name] for name in RULE_FIELDS}}
    value["lists"] = sorted(lists)
    return f"rule:{version['rule_id']}".encode(), _json(value)


def list_message(found: Mapping[str, Any]) -> tuple[bytes, bytes]:
    """(key, value) announcing one list version (a store row)."""
    value = {"kind": "list", **{name: found[name] for name in LIST_FIELDS}}
    return f"list:{found['name']}".encode(), _json(value)


def decode(value: bytes | None) -> dict | None:
    """A message's JSON, or None when it is not a rule or list message."""
    try:
        payload = json.loads(value or b"")
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(payload, dict) or payload.get("kind") not in ("rule", "list"):
        return None
    return payload


async def ensure_topic(bootstrap: Broker, timeout: float = 10.0) -> None:
    """Create aegis.rules (compacted, one partition) if it does not exist."""
    await admin.ensure_topics_async(
        bootstrap, [RULES_TOPIC], PARTITIONS, timeout, strict=False, configs=TOPIC_CONFIGS
    )


def _json(value: dict) -> bytes:
    return json.dumps(value, sort_keys=True, default=_iso, allow_nan=False).encode()


def _iso(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON: {value!r}")
