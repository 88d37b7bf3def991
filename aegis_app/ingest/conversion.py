"""Kinesis records in, Kafka messages out.

A record's data is one JSON object with a transaction's fields under the simulator-file
column names (TRANSACTION_ID, TX_DATETIME, CUSTOMER_ID, TERMINAL_ID, TX_AMOUNT, and the
optional TX_FRAUD, TX_FRAUD_SCENARIO, ...), judged by aegis_app.core.records.from_file_row
exactly as a replayed file row is. A record that is not one becomes a dead letter with the
same fields as the worker's (agents/deadletter.py) plus where it was in the stream.
"""

from __future__ import annotations

import base64
import time
from typing import Any

import orjson

from aegis_app.core.records import FILE_COLUMNS, InvalidRecord, Transaction, from_file_row

# File column of each wire field that has one (TX_TIME_* are derived, not wire fields).
_COLUMN_OF_FIELD = {field: column for column, field in FILE_COLUMNS.items()}


def source_name(stream_name: str) -> str:
    """The dead letters' `source_topic` for records of a Kinesis stream."""
    return f"kinesis:{stream_name}"


def transaction_from_data(data: bytes, max_bytes: int) -> Transaction:
    """The validated transaction in a record's data, or InvalidRecord saying why not."""
    if len(data) > max_bytes:
        raise InvalidRecord(f"data: {len(data)} bytes exceeds the {max_bytes}-byte limit")
    if not data:
        raise InvalidRecord("data: empty")
    try:
        row = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidRecord(f"data: not JSON ({exc})") from None
    if not isinstance(row, dict):
        raise InvalidRecord(f"data: expected a JSON object, got {_json_kind(row)}")
    return from_file_row(row)


def _json_kind(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


def dead_letter(
    stream_name: str,
    shard_id: str,
    sequence_number: str,
    partition_key: str,
    data: bytes,
    reason: str,
    max_payload_bytes: int,
    now_ms: int | None = None,
) -> tuple[bytes, dict[str, Any]]:
    """The key and value of the dead letter of one Kinesis record.

    `payload_b64` holds at most `max_payload_bytes` of the data, so a record refused for its
    size still fits in a Kafka message; `payload_bytes` is always the full size (larger than
    the decoded payload means the payload was cut).
    """
    source = source_name(stream_name)
    letter = {
        "reason": reason,
        "source_topic": source,
        "partition": None,
        "offset": None,
        "key_b64": _b64(partition_key.encode()),
        "payload_b64": _b64(data[:max_payload_bytes]),
        "payload_bytes": len(data),
        "refused_at_ms": int(time.time() * 1000) if now_ms is None else now_ms,
        "shard_id": shard_id,
        "sequence_number": sequence_number,
    }
    return f"{source}/{shard_id}/{sequence_number}".encode(), letter


def kinesis_data(tx: Transaction) -> bytes:
    """A transaction as a Kinesis record's data (what `transaction_from_data` reads back)."""
    row = {}
    for field, value in tx.to_wire().items():
        column = _COLUMN_OF_FIELD.get(field)
        if column is not None and value is not None:
            row[column] = value
    return orjson.dumps(row)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
