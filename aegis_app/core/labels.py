"""The label record on aegis.labels: an analyst verdict or a chargeback, and when it
became known. Label-based features (fraud share) may use it only from `known_at` on.

A label names its transaction's entity keys (``entities``: entity name -> key text, e.g.
``{"merchant": "m-17", "category": "grocery_pos"}``) so that it reaches the state of each
entity with label-based features; the keys are those of the transaction's record under the
config (`tables.engine.StreamEngine.keys`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from aegis_app.core.records import InvalidRecord, format_datetime, parse_datetime

SOURCES = ("analyst", "chargeback", "replay")
MAX_ID_CHARS = 256


@dataclass(frozen=True, slots=True)
class Label:
    transaction_id: str
    label: int  # 1 fraud, 0 legitimate
    source: str
    known_at: str  # 'YYYY-MM-DD HH:MM:SS' UTC
    tx_datetime: str  # the transaction's time, same format
    entities: dict[str, str] = field(default_factory=dict)
    card: str | None = None
    note: str | None = None

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()


def _id_text(value: Any, name: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidRecord(f"{name}: expected an id (text or integer), got {value!r}")
    text = str(value).strip()
    if not text or len(text) > MAX_ID_CHARS:
        raise InvalidRecord(f"{name}: expected an id of 1-{MAX_ID_CHARS} characters")
    return text


def parse(payload: bytes) -> Label:
    """A checked Label from JSON bytes, or InvalidRecord with the reason."""
    try:
        data: Any = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRecord("label: not valid JSON") from None
    if not isinstance(data, dict):
        raise InvalidRecord("label: expected a JSON object")
    for name in ("transaction_id", "label", "known_at", "tx_datetime"):
        if data.get(name) is None:
            raise InvalidRecord(f"label.{name}: missing")
    value = data["label"]
    if value in ("fraud", 1, True):
        value = 1
    elif value in ("legitimate", 0, False):
        value = 0
    else:
        raise InvalidRecord(f"label.label: expected fraud/legitimate or 1/0, got {value!r}")
    source = data.get("source") or "analyst"
    if source not in SOURCES:
        raise InvalidRecord(f"label.source: expected one of {SOURCES}, got {source!r}")
    entities = data.get("entities") or {}
    if not isinstance(entities, dict):
        raise InvalidRecord("label.entities: expected an object {entity name: key}")
    keys = {
        str(name): _id_text(key, f"label.entities.{name}")
        for name, key in entities.items()
        if key is not None
    }
    try:
        known_at = format_datetime(parse_datetime(data["known_at"]))
        tx_datetime = format_datetime(parse_datetime(data["tx_datetime"]))
    except InvalidRecord as exc:
        raise InvalidRecord(f"label.{exc}") from None
    card = data.get("card")
    return Label(
        transaction_id=_id_text(data["transaction_id"], "label.transaction_id"),
        label=value,
        source=source,
        known_at=known_at,
        tx_datetime=tx_datetime,
        entities=keys,
        card=None if card is None else _id_text(card, "label.card"),
        note=data.get("note") if isinstance(data.get("note"), str) else None,
    )
