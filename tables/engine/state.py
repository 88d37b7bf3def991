"""An entity's state: its recent events and fraud labels, packed as bytes.

Layout (little-endian), struct-of-arrays, events in arrival order:

    header  version u8, layout u32, base time i64, events n u32, labels m u32   (21 bytes)
    times   n x u32: event time - base time
    cells   (1 + F + K) x n x 8 bytes, one column after the other: the transaction id hash
            (u64), each numeric field the entity's features read (f64), each compared
            field's value hash (u64)
    labels  3 x m x i64, one column after the other: transaction id hash (its bits),
            transaction time, time the fraud label became known

`layout` fingerprints the columns the entity's plan keeps, so a state written under another
config is refused with a clear error instead of being misread. Every write prunes events
and labels older than the plan's horizon (relative to the newest event), so a state is
bounded by the entity's traffic over its horizon, however long its history.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass

import numba
import numpy as np

from tables.engine.plan import EntityPlan

VERSION = 1
HEADER = struct.Struct("<BIqII")
HEADER_BYTES = HEADER.size  # 21
TIME_BYTES = 4
CELL_BYTES = 8
LABEL_BYTES = 3 * 8
MAX_OFFSET = 2**32 - 1


class StateError(ValueError):
    """A state that cannot be read with this plan."""


@dataclass
class EntityState:
    ts: np.ndarray  # int64 (n,), arrival order
    cells: np.ndarray  # uint64 (1 + F + K, n): id hashes, numeric fields' bits, value hashes
    labels: np.ndarray  # int64 (3, m): id hash bits, transaction time, known at

    def __len__(self) -> int:
        return self.ts.size

    @property
    def ids(self) -> np.ndarray:
        return self.cells[0]

    def numeric(self, plan: EntityPlan, field: str) -> np.ndarray:
        return self.cells[1 + plan.numeric_fields.index(field)].view(np.float64)

    def keys(self, plan: EntityPlan, field: str) -> np.ndarray:
        return self.cells[1 + len(plan.numeric_fields) + plan.key_fields.index(field)]

    @property
    def label_ids(self) -> np.ndarray:
        return self.labels[0].view(np.uint64)

    @property
    def label_known(self) -> np.ndarray:
        return self.labels[2]


def columns(plan: EntityPlan) -> int:
    """Number of 8-byte cells per event."""
    return 1 + len(plan.numeric_fields) + len(plan.key_fields)


def event_bytes(plan: EntityPlan) -> int:
    """Bytes one event takes in this plan's state."""
    return TIME_BYTES + CELL_BYTES * columns(plan)


def empty(plan: EntityPlan) -> EntityState:
    return EntityState(
        ts=np.empty(0, np.int64),
        cells=np.empty((columns(plan), 0), np.uint64),
        labels=np.empty((3, 0), np.int64),
    )


def decode(plan: EntityPlan, blob: bytes | None) -> EntityState:
    """The state in `blob` (None or empty: no events, no labels); StateError, saying why,
    if it is not a state of this plan."""
    if not blob:
        return empty(plan)
    ok, ts, cells, labels = unpack(np.frombuffer(blob, np.uint8), columns(plan), plan.layout)
    if not ok:
        raise StateError(refusal(plan, blob))
    return EntityState(ts, cells, labels)


def refusal(plan: EntityPlan, blob: bytes) -> str:
    """Why `blob` is not a state of this plan (what :func:`unpack` found wrong)."""
    if len(blob) < HEADER_BYTES:
        return f"{plan.name} state: {len(blob)} bytes, shorter than its header"
    version, layout, _, n, m = HEADER.unpack_from(blob)
    if version != VERSION:
        return f"{plan.name} state: version {version}, this engine reads {VERSION}"
    if layout != plan.layout:
        return (
            f"{plan.name} state: written for other features (layout {layout:#010x}, the "
            f"config's is {plan.layout:#010x}); rebuild the state from the transactions"
        )
    expected = HEADER_BYTES + n * (TIME_BYTES + CELL_BYTES * columns(plan)) + m * LABEL_BYTES
    return f"{plan.name} state: {len(blob)} bytes, expected {expected}"


def encode(plan: EntityPlan, state: EntityState) -> bytes:
    fits, blob = pack(state.ts, state.cells, state.labels, plan.layout)
    if not fits:
        raise StateError(f"{plan.name} state: events span more than 136 years")
    return blob.tobytes()


# The layout is read and written in compiled code only: decode/encode above, and the stream's
# one compiled call per event (tables/engine/stream.py). Multi-byte values are little-endian,
# as on every machine numba compiles for here.


@numba.njit(cache=True, nogil=True)
def _read_uint(raw, start, size):
    value = 0
    for i in range(size):
        value |= np.int64(raw[start + i]) << (8 * i)
    return value


@numba.njit(cache=True, nogil=True)
def _write_uint(out, start, size, value):
    for i in range(size):
        out[start + i] = (value >> (8 * i)) & 0xFF


@numba.njit(cache=True, nogil=True)
def unpack(raw, width, layout):
    """(ok, ts, cells, labels) of a state's bytes (uint8; empty: no state); not ok: the
    bytes are not a state of this layout (decode() says why)."""
    nothing = (np.empty(0, np.int64), np.empty((width, 0), np.uint64), np.empty((3, 0), np.int64))
    if raw.size == 0:
        return True, nothing[0], nothing[1], nothing[2]
    if raw.size < HEADER_BYTES:
        return False, nothing[0], nothing[1], nothing[2]
    base = _read_uint(raw, 5, 8)  # i64: two's complement, as the shifts rebuild it
    n, m = _read_uint(raw, 13, 4), _read_uint(raw, 17, 4)
    if raw[0] != VERSION or _read_uint(raw, 1, 4) != layout:
        return False, nothing[0], nothing[1], nothing[2]
    if raw.size != HEADER_BYTES + n * (TIME_BYTES + CELL_BYTES * width) + m * LABEL_BYTES:
        return False, nothing[0], nothing[1], nothing[2]
    offset = HEADER_BYTES
    times = np.empty(n, np.uint32)
    times.view(np.uint8)[:] = raw[offset : offset + n * TIME_BYTES]
    ts = times.astype(np.int64) + base
    offset += n * TIME_BYTES
    cells = np.empty(n * width, np.uint64)
    cells.view(np.uint8)[:] = raw[offset : offset + n * width * CELL_BYTES]
    offset += n * width * CELL_BYTES
    labels = np.empty(3 * m, np.int64)
    labels.view(np.uint8)[:] = raw[offset : offset + m * LABEL_BYTES]
    return True, ts, cells.reshape((width, n)), labels.reshape((3, m))


@numba.njit(cache=True, nogil=True)
def pack(ts, cells, labels, layout):
    """(ok, bytes as uint8) of a state; not ok: its events span more than MAX_OFFSET."""
    n, m, width = ts.size, labels.shape[1], cells.shape[0]
    base = ts.min() if n else 0
    times = np.empty(n, np.uint32)
    for i in range(n):
        offset = ts[i] - base
        if offset > MAX_OFFSET:
            return False, np.empty(0, np.uint8)
        times[i] = offset
    out = np.empty(HEADER_BYTES + n * (TIME_BYTES + CELL_BYTES * width) + m * LABEL_BYTES, np.uint8)
    out[0] = VERSION
    _write_uint(out, 1, 4, layout)
    _write_uint(out, 5, 8, base)
    _write_uint(out, 13, 4, n)
    _write_uint(out, 17, 4, m)
    position = HEADER_BYTES
    out[position : position + n * TIME_BYTES] = times.view(np.uint8)
    position += n * TIME_BYTES
    flat = np.empty(width * n, np.uint64)
    for c in range(width):
        flat[c * n : (c + 1) * n] = cells[c]
    out[position : position + n * width * CELL_BYTES] = flat.view(np.uint8)
    position += n * width * CELL_BYTES
    flat_labels = np.empty(3 * m, np.int64)
    for r in range(3):
        flat_labels[r * m : (r + 1) * m] = labels[r]
    out[position:] = flat_labels.view(np.uint8)
    return True, out


@numba.njit(cache=True, nogil=True)
def prune(ts, cells, labels, horizon):
    """pruned() on arrays: without the events and labels at or before (newest event time -
    horizon)."""
    keep = np.empty(ts.size, dtype=np.bool_)
    keep_labels = np.empty(labels.shape[1], dtype=np.bool_)
    if _kept(ts, labels[1], horizon, keep, keep_labels):
        return ts, cells, labels
    return ts[keep], _columns_where(cells, keep), _columns_where(labels, keep_labels)


@numba.njit(cache=True, nogil=True)
def _columns_where(matrix, keep):
    kept = np.empty((matrix.shape[0], keep.sum()), matrix.dtype)
    j = 0
    for i in range(keep.size):
        if keep[i]:
            kept[:, j] = matrix[:, i]
            j += 1
    return kept


def event_cells(
    plan: EntityPlan, id_hash: int, numeric: dict[str, float], keys: dict[str, int]
) -> np.ndarray:
    """One event's cells (uint64 column), in the plan's order."""
    return events_cells(plan, np.uint64(id_hash), numeric, keys)[:, 0]


def events_cells(
    plan: EntityPlan,
    id_hashes: np.ndarray | np.uint64,
    numeric: Mapping[str, np.ndarray | float],
    keys: Mapping[str, np.ndarray | int],
) -> np.ndarray:
    """Many events' cells (uint64, (1 + F + K, n)), in the plan's order: the one layout of
    an event for the stream (one at a time, scalars) and the snapshot (every event of a
    file at once, arrays)."""
    cells = np.empty((columns(plan), np.size(id_hashes)), dtype=np.uint64)
    cells[0] = id_hashes
    first_key = 1 + len(plan.numeric_fields)
    for i, field in enumerate(plan.numeric_fields):
        cells[1 + i].view(np.float64)[:] = numeric[field]
    for i, field in enumerate(plan.key_fields):
        cells[first_key + i] = keys[field]
    return cells


def append(state: EntityState, ts: int, cells: np.ndarray) -> EntityState:
    """The state with one more event, last in arrival order."""
    return EntityState(
        ts=np.append(state.ts, np.int64(ts)),
        cells=np.concatenate([state.cells, cells[:, None]], axis=1),
        labels=state.labels,
    )


def with_label(
    state: EntityState, id_hash: int, tx_ts: int, known_at: int, fraud: bool
) -> EntityState:
    """The state with the transaction's label set: a fraud replaces an earlier label of the
    same transaction, a genuine label removes it."""
    labels = state.labels[:, state.label_ids != np.uint64(id_hash)]
    if fraud:
        entry = np.array([np.uint64(id_hash).view(np.int64), tx_ts, known_at], dtype=np.int64)
        labels = np.concatenate([labels, entry[:, None]], axis=1)
    return EntityState(state.ts, state.cells, labels)


def pruned(state: EntityState, horizon: int) -> EntityState:
    """Without the events and labels at or before (newest event time - horizon)."""
    keep = np.empty(state.ts.size, dtype=np.bool_)
    keep_labels = np.empty(state.labels.shape[1], dtype=np.bool_)
    if _kept(state.ts, state.labels[1], horizon, keep, keep_labels):
        return state
    return EntityState(state.ts[keep], state.cells[:, keep], state.labels[:, keep_labels])


@numba.njit(cache=True, nogil=True)
def _kept(ts, label_ts, horizon, keep, keep_labels) -> bool:
    """Marks the events and labels after (newest event time - horizon); True: all are."""
    if not ts.size:
        return True
    cutoff = ts.max() - horizon
    every = True
    for i in range(ts.size):
        keep[i] = ts[i] > cutoff
        every &= keep[i]
    for i in range(label_ts.size):
        keep_labels[i] = label_ts[i] > cutoff
        every &= keep_labels[i]
    return every
