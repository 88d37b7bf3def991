"""The transaction record: its fields, its validation, and the simulator-file column mapping.

One validator serves every way in (Kafka, files, the REST API), so a record that is bad
in one place is bad in all of them, with the same reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

# Simulator/Handbook file columns -> record fields.
FILE_COLUMNS = {
    "TRANSACTION_ID": "transaction_id",
    "TX_DATETIME": "tx_datetime",
    "CUSTOMER_ID": "customer_id",
    "TERMINAL_ID": "terminal_id",
    "TX_AMOUNT": "tx_amount",
    "TX_TIME_SECONDS": "tx_time_seconds",
    "TX_TIME_DAYS": "tx_time_days",
    "TX_FRAUD": "tx_fraud",
    "TX_FRAUD_SCENARIO": "tx_fraud_scenario",
}
REQUIRED_FILE_COLUMNS = ("TRANSACTION_ID", "TX_DATETIME", "CUSTOMER_ID", "TERMINAL_ID", "TX_AMOUNT")
DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"
# Amounts above this are refused as implausible (and protect float arithmetic downstream).
MAX_AMOUNT = 1e9
# Ids travel as Avro longs.
MAX_ID = 2**63 - 1


class InvalidRecord(ValueError):
    """A record that must not be processed; the message is the reason shown to people."""


@dataclass(frozen=True, slots=True)
class Transaction:
    transaction_id: int
    tx_datetime: str  # 'YYYY-MM-DD HH:MM:SS', UTC
    customer_id: int
    terminal_id: int
    tx_amount: float
    ts: int  # seconds since the Unix epoch, derived from tx_datetime
    tx_fraud: int | None = None  # ground truth when the source knows it; never a feature
    tx_fraud_scenario: int | None = None
    merchant_category: str | None = None
    channel: str | None = None

    def to_wire(self) -> dict[str, Any]:
        """Fields as they travel on aegis.transactions (ts is derived, not sent)."""
        # Field by field: dataclasses.asdict deep-copies, and this runs for every record.
        return {name: getattr(self, name) for name in WIRE_FIELDS}


# The fields of a Transaction that travel on the wire, in declaration order (not ts).
WIRE_FIELDS = tuple(f.name for f in fields(Transaction) if f.name != "ts")


def parse_datetime(value: object) -> int:
    """Epoch seconds of a 'YYYY-MM-DD HH:MM:SS' (or ISO 8601) UTC timestamp."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        text = value.strip()
        try:
            # fromisoformat (C, fast) reads the usual 'YYYY-MM-DD HH:MM:SS' and ISO 8601;
            # strptime still takes the unpadded forms it always accepted.
            moment = datetime.fromisoformat(text)
        except ValueError:
            try:
                moment = datetime.strptime(text, DATETIME_FORMAT)
            except ValueError:
                raise InvalidRecord(f"tx_datetime: cannot parse {value!r}") from None
    else:
        raise InvalidRecord(f"tx_datetime: expected a timestamp string, got {type(value).__name__}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def format_datetime(ts: int) -> str:
    """'YYYY-MM-DD HH:MM:SS' (UTC) of epoch seconds."""
    return datetime.fromtimestamp(ts, tz=UTC).replace(tzinfo=None).isoformat(" ")


def _int_field(data: dict[str, Any], name: str, *, required: bool = True) -> int | None:
    value = data.get(name)
    if value is None:
        if required:
            raise InvalidRecord(f"{name}: missing")
        return None
    if isinstance(value, bool):
        raise InvalidRecord(f"{name}: expected an integer, got bool")
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise InvalidRecord(f"{name}: expected an integer, got {value!r}")
        value = int(value)
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise InvalidRecord(f"{name}: expected an integer, got {value!r}") from None
    if not isinstance(value, int):
        raise InvalidRecord(f"{name}: expected an integer, got {type(value).__name__}")
    if value < 0:
        raise InvalidRecord(f"{name}: must not be negative, got {value}")
    if value > MAX_ID:
        raise InvalidRecord(f"{name}: larger than the largest 64-bit id, got {value}")
    return value


def validate(data: dict[str, Any]) -> Transaction:
    """A checked Transaction from a dict of record fields, or InvalidRecord with the reason."""
    if not isinstance(data, dict):
        raise InvalidRecord(f"record: expected a mapping, got {type(data).__name__}")
    amount = data.get("tx_amount")
    if amount is None:
        raise InvalidRecord("tx_amount: missing")
    if isinstance(amount, bool) or not isinstance(amount, int | float | str):
        raise InvalidRecord(f"tx_amount: expected a number, got {type(amount).__name__}")
    try:
        amount = float(amount)
    except ValueError:
        raise InvalidRecord(f"tx_amount: expected a number, got {amount!r}") from None
    if not math.isfinite(amount):
        raise InvalidRecord(f"tx_amount: must be finite, got {amount}")
    if amount < 0:
        raise InvalidRecord(f"tx_amount: must not be negative, got {amount}")
    if amount > MAX_AMOUNT:
        raise InvalidRecord(f"tx_amount: implausibly large, got {amount}")
    if data.get("tx_datetime") is None:
        raise InvalidRecord("tx_datetime: missing")
    ts = parse_datetime(data["tx_datetime"])
    fraud = _int_field(data, "tx_fraud", required=False)
    if fraud is not None and fraud not in (0, 1):
        raise InvalidRecord(f"tx_fraud: expected 0 or 1, got {fraud}")
    return Transaction(
        transaction_id=_int_field(data, "transaction_id"),  # type: ignore[arg-type]
        tx_datetime=format_datetime(ts),
        customer_id=_int_field(data, "customer_id"),  # type: ignore[arg-type]
        terminal_id=_int_field(data, "terminal_id"),  # type: ignore[arg-type]
        tx_amount=round(amount, 2),
        ts=ts,
        tx_fraud=fraud,
        tx_fraud_scenario=_int_field(data, "tx_fraud_scenario", required=False),
        merchant_category=_optional_str(data, "merchant_category"),
        channel=_optional_str(data, "channel"),
    )


def _optional_str(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRecord(f"{name}: expected a string, got {type(value).__name__}")
    if len(value) > 256:
        raise InvalidRecord(f"{name}: longer than 256 characters")
    return value


def from_file_row(row: dict[str, Any]) -> Transaction:
    """A Transaction from one row of a simulator-schema file (CSV/Parquet column names)."""
    missing = [c for c in REQUIRED_FILE_COLUMNS if c not in row]
    if missing:
        raise InvalidRecord(f"missing column(s): {', '.join(missing)}")
    data = {field: _nan_to_none(row.get(col)) for col, field in FILE_COLUMNS.items()}
    return validate(data)


def _nan_to_none(value: object) -> object:
    if isinstance(value, float) and math.isnan(value):
        return None
    if value == "":
        return None
    return value
