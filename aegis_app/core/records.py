"""What every way in shares about a record: the refusal (InvalidRecord, whose message is the
reason shown to people), the amount bound, and the one text form of times on labels,
decisions and the store ('YYYY-MM-DD HH:MM:SS', UTC).

The records themselves are the user's, in the schema their config declares: read by
aegis_app.core.source, on the wire by aegis_app.core.codec.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np

DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"
# Amounts above this are refused as implausible (and protect float arithmetic downstream).
MAX_AMOUNT = 1e9


class InvalidRecord(ValueError):
    """A record that must not be processed; the message is the reason shown to people."""


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


def format_datetimes(ts: Sequence[int]) -> list[str]:
    """`format_datetime` of each of many epoch seconds (years 1-9999), in one numpy call
    rather than a datetime per value."""
    stamps = np.datetime_as_string(np.asarray(ts, dtype=np.int64).astype("datetime64[s]"))
    return [text.replace("T", " ") for text in stamps.tolist()]
