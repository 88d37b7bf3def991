"""The label record on aegis.labels: an analyst verdict or a chargeback, and when it
became known. Terminal risk features may use it only from `known_at` on."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from aegis_app.core.records import InvalidRecord, format_datetime, parse_datetime

SOURCES = ("analyst", "chargeback", "replay")


@dataclass(frozen=True, slots=True)
class Label:
    transaction_id: int
    label: int  # 1 fraud, 0 legitimate
    source: str
    known_at: str  # 'YYYY-MM-DD HH:MM:SS' UTC
    terminal_id: int
    tx_datetime: str
    customer_id: int | None = None
    note: str | None = None

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()


def parse(payload: bytes) -> Label:
    """A checked Label from JSON bytes, or InvalidRecord with the reason."""
    try:
        data: Any = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRecord("label: not valid JSON") from None
    if not isinstance(data, dict):
        raise InvalidRecord("label: expected a JSON object")
    for name in ("transaction_id", "label", "terminal_id", "known_at", "tx_datetime"):
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
    ids = {}
    for name in ("transaction_id", "terminal_id", "customer_id"):
        raw = data.get(name)
        if raw is None:
            ids[name] = None
            continue
        if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
            raise InvalidRecord(f"label.{name}: expected a non-negative integer, got {raw!r}")
        ids[name] = raw
    return Label(
        transaction_id=ids["transaction_id"],
        label=value,
        source=source,
        known_at=format_datetime(parse_datetime(data["known_at"])),
        terminal_id=ids["terminal_id"],
        tx_datetime=format_datetime(parse_datetime(data["tx_datetime"])),
        customer_id=ids["customer_id"],
        note=data.get("note") if isinstance(data.get("note"), str) else None,
    )
