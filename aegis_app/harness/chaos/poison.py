"""Poison records for aegis.transactions: bad encodings, unknown wire versions, truncated or
trailing bytes, invalid UTF-8, huge fields, NaN/inf/negative amounts, bad dates, wrong types.

Each one is checked to be refused by the card stage's own decoder (RecordCodec.decode of the
default preset, the schema the chaos stack runs), so the chaos run knows that every one must
end on aegis.deadletter with a reason.
"""

from __future__ import annotations

import json
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from aegis_app.core.codec import WIRE_VERSION, RecordCodec
from aegis_app.core.files import simulator_config
from aegis_app.core.records import InvalidRecord
from aegis_app.core.settings import Settings


@cache
def poison_codec() -> RecordCodec:
    """The codec of the default preset: the schema the chaos stack's workers read."""
    return RecordCodec(simulator_config())


def _valid_fields(rng: random.Random) -> dict[str, Any]:
    """Wire fields of a valid transaction (default preset's columns) to spoil one by one."""
    return {
        "TRANSACTION_ID": str(rng.randrange(10**12, 2 * 10**12)),  # never a real id
        "TX_DATETIME": "2018-04-01 12:00:00",
        "CUSTOMER_ID": str(rng.randrange(0, 5000)),
        "TERMINAL_ID": str(rng.randrange(0, 10000)),
        "TX_AMOUNT": round(rng.uniform(1, 200), 2),
        "TX_FRAUD": None,
    }


def _encoded(rng: random.Random, **spoilt: Any) -> bytes:
    """Wire bytes of a transaction with some fields replaced: Avro takes them (types fit),
    the decoder's checks must not."""
    return poison_codec().encode_fields({**_valid_fields(rng), **spoilt})


def _bad_utf8(rng: random.Random) -> bytes:
    payload = _encoded(rng, TX_DATETIME="X" * 19)
    return payload.replace(b"X" * 19, bytes(rng.choice([0xFF, 0xC3, 0xE2]) for _ in range(19)))


def _wrong_types(rng: random.Random) -> bytes:
    choice = rng.randrange(4)
    if choice == 0:  # JSON where Avro is expected ('{' is an unknown wire version)
        return json.dumps({"TRANSACTION_ID": "abc", "TX_AMOUNT": "lots"}).encode()
    if choice == 1:  # garbage where the id's union branch is: an index that does not exist
        return bytes([WIRE_VERSION]) + b"\x0bnot-a-long" + struct.pack("<d", 1.0)
    if choice == 2:  # the label's union branch 7 (there are two: null, int); it is last
        return _encoded(rng)[:-1] + b"\x0e"
    return _encoded(rng, TX_FRAUD=rng.choice([2, 7, -1, 99]))  # not a 0/1 label


def _other_version(rng: random.Random) -> bytes:
    version = rng.choice([v for v in range(256) if v != WIRE_VERSION])
    return bytes([version]) + _encoded(rng)[1:]


POISON_KINDS: dict[str, Callable[[random.Random], bytes]] = {
    "empty": lambda rng: b"",
    "garbage": lambda rng: (
        bytes([rng.choice([v for v in range(256) if v != WIRE_VERSION])])
        + rng.randbytes(rng.randrange(0, 300))
    ),
    "garbage_body": lambda rng: bytes([WIRE_VERSION]) + rng.randbytes(rng.randrange(0, 60)),
    "wire_version": _other_version,  # the old version 1 among them
    "truncated": lambda rng: (lambda p: p[: rng.randrange(1, len(p) - 1)])(_encoded(rng)),
    "trailing": lambda rng: _encoded(rng) + rng.randbytes(rng.randrange(1, 9)),
    "bad_utf8": _bad_utf8,
    "nan": lambda rng: _encoded(rng, TX_AMOUNT=float("nan")),
    "inf": lambda rng: _encoded(rng, TX_AMOUNT=rng.choice([float("inf"), float("-inf")])),
    "negative": lambda rng: _encoded(rng, TX_AMOUNT=-rng.uniform(0.01, 1e6)),
    "too_large_amount": lambda rng: _encoded(rng, TX_AMOUNT=1e15),
    "bad_datetime": lambda rng: _encoded(
        rng,
        TX_DATETIME=rng.choice(
            ["yesterday", "", "2018-13-45 99:99:99", "\u2603" * 12, "9" * 64, "NaT"]
        ),
    ),
    "missing_id": lambda rng: _encoded(rng, **{rng.choice(["CUSTOMER_ID", "TERMINAL_ID"]): ""}),
    "wrong_types": _wrong_types,
    # Huge fields are rare (each is ~20-40 kB on the wire).
    "huge_field": lambda rng: _encoded(rng, TERMINAL_ID="x" * rng.randrange(20_000, 40_000)),
}


# Relative frequencies: everything common except the huge records.
POISON_WEIGHTS = {kind: (1 if kind == "huge_field" else 10) for kind in POISON_KINDS}


@dataclass
class Poison:
    kind: str
    key: bytes | None
    payload: bytes
    reason: str  # what the decoder says: the dead letter must carry a reason too


def poison_records(n: int, seed: int = 0, max_bytes: int | None = None) -> list[Poison]:
    """`n` hostile records, each checked to be refused by the card stage's own decoder."""
    rng = random.Random(seed)
    max_bytes = max_bytes or Settings().max_record_bytes
    kinds = list(POISON_KINDS)
    weights = [POISON_WEIGHTS[k] for k in kinds]
    out: list[Poison] = []
    while len(out) < n:
        kind = rng.choices(kinds, weights)[0]
        payload = POISON_KINDS[kind](rng)
        try:
            poison_codec().decode(payload, max_bytes)
        except InvalidRecord as exc:
            reason = str(exc)
        else:
            continue  # by chance a valid transaction: not poison, draw again
        key = rng.choice([str(rng.randrange(5000)).encode(), f"poison-{len(out)}".encode(), None])
        out.append(Poison(kind, key, payload, reason))
    return out
