"""Poison records for aegis.transactions: bad encodings, unknown wire versions, truncated or
trailing bytes, invalid UTF-8, huge fields, NaN/inf/negative amounts, bad dates, wrong types.

Each one is checked to be refused by the card stage's own decoder (aegis_app.core.codec), so
the chaos run knows that every one must end on aegis.deadletter with a reason.
"""

from __future__ import annotations

import json
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass

from aegis_app.core import codec
from aegis_app.core.records import InvalidRecord
from aegis_app.core.settings import Settings


def _valid_fields(rng: random.Random) -> dict:
    return {
        "transaction_id": rng.randrange(10**12, 2 * 10**12),  # never a real transaction id
        "tx_datetime": "2018-04-01 12:00:00",
        "customer_id": rng.randrange(0, 5000),
        "terminal_id": rng.randrange(0, 10000),
        "tx_amount": round(rng.uniform(1, 200), 2),
    }


def _bad_utf8(rng: random.Random) -> bytes:
    data = _valid_fields(rng)
    data["tx_datetime"] = "X" * 19
    payload = codec.encode(data)
    return payload.replace(b"X" * 19, bytes(rng.choice([0xFF, 0xC3, 0xE2]) for _ in range(19)))


def _wrong_types(rng: random.Random) -> bytes:
    choice = rng.randrange(4)
    if choice == 0:  # JSON where Avro is expected ('{' is an unknown wire version)
        return json.dumps({"transaction_id": "abc", "tx_amount": "lots"}).encode()
    if choice == 1:  # a string where a long is expected: Avro reads a garbage length
        return bytes([codec.WIRE_VERSION]) + b"\x0bnot-a-long" + struct.pack("<d", 1.0)
    if choice == 2:  # a union branch that does not exist (tx_fraud index 7)
        data = _valid_fields(rng)
        body = codec.encode(data)
        return body[:-4] + b"\x0e" + body[-3:]
    data = {**_valid_fields(rng), "tx_fraud": rng.choice([2, 7, -1, 99])}  # not a 0/1 label
    return codec.encode(data)


POISON_KINDS: dict[str, Callable[[random.Random], bytes]] = {
    "empty": lambda rng: b"",
    "garbage": lambda rng: bytes([rng.randrange(2, 256)]) + rng.randbytes(rng.randrange(0, 300)),
    "garbage_v1": lambda rng: bytes([codec.WIRE_VERSION]) + rng.randbytes(rng.randrange(0, 60)),
    "wire_version": lambda rng: (
        bytes([rng.choice([0, *range(2, 256)])]) + codec.encode(_valid_fields(rng))[1:]
    ),
    "truncated": lambda rng: (lambda p: p[: rng.randrange(1, len(p) - 1)])(
        codec.encode(_valid_fields(rng))
    ),
    "trailing": lambda rng: codec.encode(_valid_fields(rng)) + rng.randbytes(rng.randrange(1, 9)),
    "bad_utf8": _bad_utf8,
    "nan": lambda rng: codec.encode({**_valid_fields(rng), "tx_amount": float("nan")}),
    "inf": lambda rng: codec.encode(
        {**_valid_fields(rng), "tx_amount": rng.choice([float("inf"), float("-inf")])}
    ),
    "negative": lambda rng: codec.encode(
        {**_valid_fields(rng), "tx_amount": -rng.uniform(0.01, 1e6)}
    ),
    "too_large_amount": lambda rng: codec.encode({**_valid_fields(rng), "tx_amount": 1e15}),
    "bad_datetime": lambda rng: codec.encode(
        {
            **_valid_fields(rng),
            "tx_datetime": rng.choice(
                ["yesterday", "", "2018-13-45 99:99:99", "\u2603" * 12, "9" * 64, "NaT"]
            ),
        }
    ),
    "wrong_types": _wrong_types,
    # Huge fields are rare (each is ~20-40 kB on the wire).
    "huge_field": lambda rng: codec.encode(
        {**_valid_fields(rng), "merchant_category": "x" * rng.randrange(20_000, 40_000)}
    ),
}


# Relative frequencies: everything common except the huge records.
POISON_WEIGHTS = {kind: (1 if kind == "huge_field" else 10) for kind in POISON_KINDS}


@dataclass
class Poison:
    kind: str
    key: bytes | None
    payload: bytes
    reason: str  # what codec.decode says: the dead letter must carry a reason too


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
            codec.decode(payload, max_bytes)
        except InvalidRecord as exc:
            reason = str(exc)
        else:
            continue  # by chance a valid transaction: not poison, draw again
        key = rng.choice([str(rng.randrange(5000)).encode(), f"poison-{len(out)}".encode(), None])
        out.append(Poison(kind, key, payload, reason))
    return out
