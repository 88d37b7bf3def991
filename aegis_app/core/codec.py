"""Avro wire format of aegis.transactions.

Each message is one version byte followed by the Avro binary encoding of the record
(schemaless: both sides ship the same .avsc). The version byte lets the schema evolve
while old producers are still running; an unknown version is a dead letter, not a crash.
"""

from __future__ import annotations

import io
import json
from functools import cache
from importlib import resources
from typing import Any

import fastavro

from aegis_app.core.records import InvalidRecord, Transaction, validate

WIRE_VERSION = 1


@cache
def transaction_schema() -> dict[str, Any]:
    text = resources.files("aegis_app.core.schemas").joinpath("transaction.avsc").read_text()
    return fastavro.parse_schema(json.loads(text))


def encode(record: Transaction | dict[str, Any]) -> bytes:
    """Wire bytes of a transaction (a Transaction or a dict of its wire fields)."""
    data = record.to_wire() if isinstance(record, Transaction) else record
    buffer = io.BytesIO()
    buffer.write(bytes([WIRE_VERSION]))
    fastavro.schemaless_writer(buffer, transaction_schema(), data)
    return buffer.getvalue()


def decode_fields(payload: bytes, max_bytes: int | None = None) -> dict[str, Any]:
    """The record's fields, or InvalidRecord saying why the bytes cannot be read."""
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise InvalidRecord(f"payload: expected bytes, got {type(payload).__name__}")
    payload = bytes(payload)
    if max_bytes is not None and len(payload) > max_bytes:
        raise InvalidRecord(f"payload: {len(payload)} bytes exceeds the {max_bytes}-byte limit")
    if not payload:
        raise InvalidRecord("payload: empty")
    if payload[0] != WIRE_VERSION:
        raise InvalidRecord(f"payload: unknown wire version {payload[0]}")
    buffer = io.BytesIO(payload)
    buffer.seek(1)
    try:
        fields = fastavro.schemaless_reader(buffer, transaction_schema(), None)
    except Exception as exc:  # fastavro raises many types on garbage input
        reason = f"payload: not a valid Avro transaction ({type(exc).__name__})"
        raise InvalidRecord(reason) from None
    if buffer.tell() != len(payload):
        raise InvalidRecord(f"payload: {len(payload) - buffer.tell()} trailing bytes after record")
    return fields  # type: ignore[return-value]


def decode(payload: bytes, max_bytes: int | None = None) -> Transaction:
    """A validated Transaction from wire bytes, or InvalidRecord with the reason."""
    try:
        return validate(decode_fields(payload, max_bytes))
    except UnicodeDecodeError:
        raise InvalidRecord("payload: a string field is not valid UTF-8") from None
