"""Canonical text and 64-bit hashes of ids, entity keys and field values.

State stores a transaction id or a compared value as an 8-byte blake2b hash, whatever its
length; 0 stands for a missing value. The stream hashes one value at a time, the batch
each distinct value of a column once: both through :func:`hash_text`, so they agree.
"""

from __future__ import annotations

import functools
import hashlib
import math
from typing import Any

import numpy as np
import pandas as pd

MISSING = 0  # the hash of a missing value


def is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def text_of(value: Any) -> str | None:
    """A categorical value as text (None when missing)."""
    if is_missing(value):
        return None
    return value if isinstance(value, str) else str(value)


def number_text(value: Any) -> str | None:
    """A numeric value as text: equal numbers give equal text (1 and 1.0, -0.0 and 0.0)."""
    if is_missing(value):
        return None
    number = float(value)
    if math.isnan(number):
        return None
    return repr(number + 0.0)


def key_text(value: Any, numeric: bool) -> str | None:
    return number_text(value) if numeric else text_of(value)


@functools.lru_cache(maxsize=1 << 16)
def hash_text(text: str | None) -> int:
    """The 64-bit hash of a text; never 0 for a present value. Remembered for the most
    recent texts: a transaction id is hashed for each entity, a card or merchant key for
    each of its transactions."""
    if text is None:
        return MISSING
    digest = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
    return digest or 1


def hash_value(value: Any, numeric: bool) -> int:
    return hash_text(key_text(value, numeric))


def id_hash(transaction_id: Any) -> int:
    if is_missing(transaction_id):
        raise ValueError("transaction_id: missing")
    return hash_text(transaction_id if isinstance(transaction_id, str) else str(transaction_id))


def hash_column(values: Any, numeric: bool) -> np.ndarray:
    """Hashes (uint64) of a column, each distinct value hashed once."""
    codes, uniques = pd.factorize(np.asarray(values, dtype=object), use_na_sentinel=True)
    table = np.array(
        [hash_value(u, numeric) for u in uniques] + [MISSING], dtype=np.uint64
    )  # code -1 (missing) reads the last entry
    return table[codes]


def key_codes(values: Any, numeric: bool) -> np.ndarray:
    """Group codes (int64, -1 when missing) of an entity column: equal canonical text, equal
    code, the same grouping the stream's state keys make."""
    codes, uniques = pd.factorize(np.asarray(values, dtype=object), use_na_sentinel=True)
    texts = [key_text(u, numeric) for u in uniques]
    canonical, _ = pd.factorize(np.array(texts + [None], dtype=object), use_na_sentinel=True)
    return canonical.astype(np.int64)[codes]
