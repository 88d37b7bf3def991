"""Kinesis records in, Kafka messages out.

A record's data is one JSON object: a transaction in the user's schema (the config's column
names, e.g. TRANSACTION_ID, TX_DATETIME, CUSTOMER_ID, ... for the default preset), checked by
the config's RecordCodec exactly as a replayed file row is, and sent in its wire format keyed
by card. A record that is not one becomes a dead letter with the same fields as the
worker's (agents/deadletter.py) plus where it was in the stream.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping
from typing import Any

import orjson

from aegis_app.core.codec import RecordCodec
from aegis_app.core.records import InvalidRecord


def source_name(stream_name: str) -> str:
    """The dead letters' `source_topic` for records of a Kinesis stream."""
    return f"kinesis:{stream_name}"


def message_from_data(data: bytes, codec: RecordCodec, max_bytes: int) -> tuple[bytes, bytes]:
    """(wire payload, key) for aegis.transactions of the transaction in a record's data, or
    InvalidRecord saying why it is not one."""
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
    record = codec.reader.record(row)
    # RecordCodec.encode(row), without checking the row a second time.
    return codec.encode_fields(codec.fields_of(record, row)), codec.key(record)


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


def kinesis_data(raw: Mapping[str, Any]) -> bytes:
    """A raw record in the user's schema as a Kinesis record's data (what
    `message_from_data` reads); missing values are left out."""
    return orjson.dumps({k: v for k, v in raw.items() if v is not None})


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
