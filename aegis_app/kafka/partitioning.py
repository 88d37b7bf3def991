"""Kafka's default key partitioning for a whole batch of keys in one compiled call.

Why: aiokafka's DefaultPartitioner hashes each key with murmur2 in pure Python (~3 µs a
key), and the worker partitions a hop and a decision per transaction. This is the same
function (Kafka's ``Utils.murmur2``, the partition ``(hash & 0x7fffffff) % count``), in
numba over every key of a batch; aegis_app/kafka/raw_producer.py uses it only when the
producer's partitioner is aiokafka's default one (tests/aegis_app/kafka/test_partitioning.py
holds the two equal).
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np

SEED = 0x9747B28C
MULTIPLIER = 0x5BD1E995
MASK = 0xFFFFFFFF


def partitions_of(keys: Sequence[bytes], count: int) -> list[int]:
    """The partition (of `count`) Kafka's default partitioner gives each key."""
    if not keys:
        return []
    lengths = np.fromiter((len(k) for k in keys), dtype=np.int64, count=len(keys))
    ends = np.cumsum(lengths)
    joined = np.frombuffer(b"".join(keys), dtype=np.uint8)
    return _partitions(joined, ends, count).tolist()


def warm_up() -> None:
    """Compile (or load from numba's cache) before the first batch needs it."""
    partitions_of([b"key"], 1)


@numba.njit(cache=True, nogil=True)
def _partitions(joined, ends, count):
    out = np.empty(ends.size, np.int64)
    start = 0
    for i in range(ends.size):
        out[i] = (_murmur2(joined[start : ends[i]]) & 0x7FFFFFFF) % count
        start = ends[i]
    return out


@numba.njit(cache=True, nogil=True)
def _murmur2(data):
    """Kafka's murmur2 of a key's bytes, as an unsigned 32-bit value."""
    length = data.size
    h = (SEED ^ length) & MASK
    whole = length - length % 4
    for i in range(0, whole, 4):
        k = (
            np.uint64(data[i])
            | (np.uint64(data[i + 1]) << 8)
            | (np.uint64(data[i + 2]) << 16)
            | (np.uint64(data[i + 3]) << 24)
        )
        k = (k * MULTIPLIER) & MASK
        k ^= k >> 24
        k = (k * MULTIPLIER) & MASK
        h = (h * MULTIPLIER) & MASK
        h ^= k
    tail = length % 4
    if tail == 3:
        h ^= np.uint64(data[whole + 2]) << 16
    if tail >= 2:
        h ^= np.uint64(data[whole + 1]) << 8
    if tail >= 1:
        h ^= np.uint64(data[whole])
        h = (h * MULTIPLIER) & MASK
    h ^= h >> 13
    h = (h * MULTIPLIER) & MASK
    h ^= h >> 15
    return h
