"""Avro wire format of aegis.transactions: the user's own record, in the schema their
config declares.

Each message is one version byte followed by the Avro binary encoding of the record
(schemaless: both sides derive the same schema from the same config, and `aegis schema`
prints it for producers written elsewhere). The fields are the configured source columns
under their own names, typed by their declared kind:

    transaction id, card, merchant   string or long (hashed PANs, 19-digit numbers, hex)
    amount                           double
    timestamp                        long or double (epoch formats), string (a strftime format)
    label                            null or int (ground truth when the source knows it)
    categorical / date               null or string
    numeric                          null or double
    boolean                          null or boolean
    latlon                           its two columns, each null or double

Decoding gives the normalised record of aegis_app.core.source, checked by the same reader
that reads files and API requests, so a record that is bad in one place is bad in all of
them, with the same reason. An unknown version byte is a dead letter, not a crash.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import fastavro

from aegis_app.core.config import Config, ConfigError
from aegis_app.core.records import InvalidRecord
from aegis_app.core.source import SourceReader

WIRE_VERSION = 2
AVRO_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

# Normalised record keys that are not configured extra fields.
CORE_KEYS = ("transaction_id", "card", "merchant", "amount", "ts", "label")
_CORE = frozenset(CORE_KEYS)


class RecordCodec:
    """Encodes the user's records for aegis.transactions and decodes them into normalised
    records, for one config."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.reader = SourceReader(config)
        self._columns = _wire_columns(config)
        self.schema_json = {
            "type": "record",
            "name": "Transaction",
            "namespace": "io.aegis",
            "doc": "One card transaction on aegis.transactions, in the schema of the config "
            f"{config.path.name if config.path else '(inline)'}.",
            "fields": [_field(column, kind) for column, kind in self._columns],
        }
        self.schema = fastavro.parse_schema(self.schema_json)

    # ------------------------------------------------------------------ encode

    def wire_fields(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """The record as it travels: its configured columns, checked (InvalidRecord naming
        the column), each in its wire type; other columns of `raw` are not sent."""
        record = self.reader.record(raw)
        return self.fields_of(record, raw)

    def fields_of(
        self, record: Mapping[str, Any], raw: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Wire fields of a normalised record (`raw`, if given, supplies the timestamp and
        date texts exactly as the source wrote them)."""
        src = self.config.source
        out: dict[str, Any] = {}
        for column, kind in self._columns:
            if kind == "id":
                out[column] = record[_role_of(src, column)]
            elif kind == "amount":
                out[column] = float(record["amount"])
            elif kind == "epoch":
                out[column] = _epoch(record["ts"], src.timestamp.format, raw, column)
            elif kind == "time_text":
                out[column] = _raw_text(raw, column) or _format_time(
                    record["ts"], src.timestamp.format, src.timestamp.timezone
                )
            elif kind == "label":
                out[column] = record.get("label")
            elif kind == "date":
                out[column] = _raw_text(raw, column) or _format_date(
                    record.get(column), src.date_formats[column]
                )
            elif kind == "coordinate":
                out[column] = _none_if_nan(record[self._coordinate_key(column)])
            elif kind == "boolean":
                value = _none_if_nan(record.get(column))
                out[column] = None if value is None else bool(value)
            elif kind == "numeric":
                out[column] = _none_if_nan(record.get(column))
            else:
                out[column] = record.get(column)
        return out

    def encode(self, raw: Mapping[str, Any]) -> bytes:
        """Wire bytes of one record in the user's schema (InvalidRecord if it does not fit)."""
        return self.encode_fields(self.wire_fields(raw))

    def encode_fields(self, fields: Mapping[str, Any]) -> bytes:
        """Wire bytes of fields as they travel (no checks beyond Avro's types)."""
        buffer = io.BytesIO()
        buffer.write(bytes([WIRE_VERSION]))
        try:
            fastavro.schemaless_writer(buffer, self.schema, dict(fields))
        except (TypeError, ValueError) as exc:
            raise InvalidRecord(f"record: does not fit the wire schema ({exc})") from None
        return buffer.getvalue()

    def key(self, record: Mapping[str, Any]) -> bytes:
        """The record key on aegis.transactions: the card (the card stage's partitioning)."""
        return str(record["card"]).encode()

    # ------------------------------------------------------------------ decode

    def decode_fields(self, payload: Any, max_bytes: int | None = None) -> dict[str, Any]:
        """The wire fields of a message, or InvalidRecord saying why the bytes cannot be read."""
        if not isinstance(payload, bytes | bytearray | memoryview):
            raise InvalidRecord(f"payload: expected bytes, got {type(payload).__name__}")
        payload = bytes(payload)
        if max_bytes is not None and len(payload) > max_bytes:
            raise InvalidRecord(f"payload: {len(payload)} bytes exceeds the {max_bytes}-byte limit")
        if not payload:
            raise InvalidRecord("payload: empty")
        if payload[0] != WIRE_VERSION:
            raise InvalidRecord(
                f"payload: unknown wire version {payload[0]} (this worker reads {WIRE_VERSION})"
            )
        buffer = io.BytesIO(payload)
        buffer.seek(1)
        try:
            fields = fastavro.schemaless_reader(buffer, self.schema, None)
        except UnicodeDecodeError:
            raise InvalidRecord("payload: a string field is not valid UTF-8") from None
        except Exception as exc:  # fastavro raises many types on garbage input
            raise InvalidRecord(
                f"payload: not a valid Avro transaction of this config ({type(exc).__name__})"
            ) from None
        if buffer.tell() != len(payload):
            raise InvalidRecord(
                f"payload: {len(payload) - buffer.tell()} trailing bytes after record"
            )
        return fields  # type: ignore[return-value]

    def decode(self, payload: Any, max_bytes: int | None = None) -> dict[str, Any]:
        """The normalised record of a message, or InvalidRecord with the reason."""
        return self.reader.record(self.decode_fields(payload, max_bytes))

    # ------------------------------------------------------------------ internals

    def _coordinate_key(self, column: str) -> str:
        for name, (lat, lon) in self.config.source.pairs.items():
            if column == lat:
                return f"{name}.lat"
            if column == lon:
                return f"{name}.lon"
        raise KeyError(column)


def extra_fields(record: Mapping[str, Any]) -> dict[str, Any]:
    """The configured extra fields of a normalised record (NaN as None: JSON-safe)."""
    if record.keys() <= _CORE:  # none (a config without extra fields): every decision asks
        return {}
    return {k: _none_if_nan(v) for k, v in record.items() if k not in _CORE}


def json_safe(record: Mapping[str, Any]) -> dict[str, Any]:
    """A normalised record with NaN as None, for JSON messages (the engine reads None as
    missing, as it reads NaN)."""
    return {k: _none_if_nan(v) for k, v in record.items()}


# --------------------------------------------------------------------------- schema


def _wire_columns(config: Config) -> list[tuple[str, str]]:
    """(column, wire kind) of every configured column, in the source's order."""
    src = config.source
    columns: list[tuple[str, str]] = []
    for role in ("transaction_id", "card", "merchant"):
        columns.append((getattr(src, role), "id"))
    columns.append((src.amount, "amount"))
    stamp_kind = "epoch" if src.timestamp.format in ("epoch_s", "epoch_ms") else "time_text"
    columns.append((src.timestamp.field, stamp_kind))
    if src.label:
        columns.append((src.label, "label"))
    for name, kind in src.fields.items():
        if kind == "latlon":
            columns.extend((column, "coordinate") for column in src.pairs[name])
        else:
            columns.append((name, kind))
    seen: set[str] = set()
    for column, _ in columns:
        if not AVRO_NAME.match(column):
            raise ConfigError(
                f"source: the column {column!r} cannot be an Avro field name (letters, digits "
                "and _, not starting with a digit); rename it in the source"
            )
        if column in seen:
            raise ConfigError(f"source: the column {column!r} is used twice")
        seen.add(column)
    return columns


_WIRE_TYPES: dict[str, Any] = {
    "id": ["string", "long"],
    "amount": "double",
    "epoch": ["long", "double"],
    "time_text": "string",
    "label": ["null", "int"],
    "categorical": ["null", "string"],
    "date": ["null", "string"],
    "numeric": ["null", "double"],
    "coordinate": ["null", "double"],
    "boolean": ["null", "boolean"],
}


def _field(column: str, kind: str) -> dict[str, Any]:
    avro_type = _WIRE_TYPES[kind]
    field: dict[str, Any] = {"name": column, "type": avro_type}
    if isinstance(avro_type, list) and avro_type[0] == "null":
        field["default"] = None
    return field


def _role_of(src: Any, column: str) -> str:
    for role in ("transaction_id", "card", "merchant"):
        if getattr(src, role) == column:
            return role
    raise KeyError(column)


# --------------------------------------------------------------------------- values


def _none_if_nan(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _raw_text(raw: Mapping[str, Any] | None, column: str) -> str | None:
    if raw is None:
        return None
    value = raw.get(column)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


def _epoch(ts: int, fmt: str, raw: Mapping[str, Any] | None, column: str) -> int | float:
    if (
        raw is not None
        and isinstance(raw.get(column), int | float)
        and not isinstance(raw.get(column), bool)
    ):
        return raw[column]
    return int(ts) * 1000 if fmt == "epoch_ms" else int(ts)


def _format_time(ts: int, fmt: str, zone: str) -> str:
    return datetime.fromtimestamp(int(ts), tz=ZoneInfo(zone)).strftime(fmt)


def _format_date(seconds: int | None, fmt: str) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(int(seconds), tz=UTC).strftime(fmt)
