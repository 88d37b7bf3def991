"""The window arithmetic: one function per window kind, the same for stream and batch.

Both paths hand :func:`evaluate` an entity's events in *window order* (:class:`Events`:
grouped by key, each key's events sorted by time, ties in arrival order) and the positions
of the transactions to answer for. The stream passes one key's state and one position, the
batch every key's events and every position. A window of a transaction at position p,
time t, is a range [start, end) of positions:

    start = first position of the key with time > t - delay - span
    end   = one past the last position of the key with time <= t - delay, at most p + 1
            (with delay 0: the transaction itself and earlier-arriving same-second ones)
    previous events: [start, min(end, p))

Sums, minima and maxima are reduced over each window's own values (no running sums over a
whole history: their rounding would depend on how much history a path holds); spreads are
two-pass (mean first, then squared deviations), so a window of equal values has spread 0
in both paths. Cost: the windows' total length, in numpy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from tables.engine.plan import EntityPlan, FeatureGroup

NO_FRAUD = np.iinfo(np.int64).max  # fraud_known of an event without a known fraud label
CHUNK = 1 << 22  # elements materialised at once by the per-element reductions
FEW = 8  # windows reduced one by one (the stream's), below the cost of vectorising them

Quantity = tuple[str, str | None, bool]  # (name, normalised field, over previous events?)


@dataclass
class Events:
    """An entity's events in window order."""

    ts: np.ndarray  # int64 epoch seconds
    # Ascending sort key: the time for one key; for many keys, the time offset by the key's
    # group so that keys never overlap.
    order: np.ndarray
    # Per event: a sort key below its key's first event and above the previous key's last
    # one; window bounds are clamped to it so they never reach another key (None: one key).
    floor: np.ndarray | None
    group: np.ndarray | None  # key code per event (None: one key)
    numeric: dict[str, np.ndarray]  # float64, NaN when missing
    keys: dict[str, np.ndarray]  # uint64 value hashes, 0 when missing
    fraud_known: np.ndarray | None  # int64: when the event's fraud label became known


class WindowQuery:
    """The windows of the transactions at `positions`, and the quantities their features
    need, each computed once for all the windows that need it."""

    def __init__(self, plan: EntityPlan, events: Events, positions: np.ndarray) -> None:
        self.plan = plan
        self.events = events
        self.positions = positions
        self.t = events.ts[positions]
        key = events.order[positions]
        high = key - plan.delays[:, None]
        low = high - plan.spans[:, None]
        if events.floor is not None:
            floor = events.floor[positions]
            low, high = np.maximum(low, floor), np.maximum(high, floor)
        # Shape (windows, positions).
        self.start = np.searchsorted(events.order, low, side="right")
        self.end = np.minimum(np.searchsorted(events.order, high, side="right"), positions + 1)
        self.prev_end = np.minimum(self.end, positions)
        self._cache: dict[Quantity, tuple[tuple[int, ...], object]] = {}
        self._bounds: dict[tuple[tuple[int, ...], bool], tuple[np.ndarray, np.ndarray]] = {}
        self._previous_same: dict[str, np.ndarray] = {}
        self._present: dict[str, np.ndarray | None] = {}

    def counts(self, rows: tuple[int, ...], previous: bool = False) -> np.ndarray:
        """Events in each window of `rows` (shape: rows, positions)."""
        ends = self.prev_end if previous else self.end
        pick = _rows(rows)
        return ends[pick] - self.start[pick]

    def quantity(self, name: str, source: str | None, previous: bool, rows: tuple[int, ...]):
        """A quantity over the windows of `rows` (shape: rows, positions), computed once for
        every window row that needs it."""
        key = (name, source, previous)
        if key not in self._cache:
            needed = self.plan.demand[key]
            self._cache[key] = (needed, QUANTITIES[name](self, source, previous, needed))
        needed, values = self._cache[key]
        if rows == needed:
            return values
        index = [needed.index(r) for r in rows]
        if isinstance(values, tuple):
            return tuple(v[index] for v in values)
        return values[index]

    def bounds(self, rows: tuple[int, ...], previous: bool) -> tuple[np.ndarray, np.ndarray]:
        """Window starts and ends of `rows`, flattened row after row."""
        key = (rows, previous)
        if key not in self._bounds:
            ends = self.prev_end if previous else self.end
            pick = _rows(rows)
            self._bounds[key] = (self.start[pick].ravel(), ends[pick].ravel())
        return self._bounds[key]

    def previous_same(self, source: str) -> np.ndarray:
        if source not in self._previous_same:
            self._previous_same[source] = previous_same(self.events.keys[source], self.events.group)
        return self._previous_same[source]

    def present(self, source: str) -> np.ndarray | None:
        """Which events have a value of the numeric field (None: all of them)."""
        if source not in self._present:
            present = ~np.isnan(self.events.numeric[source])
            self._present[source] = None if present.all() else present
        return self._present[source]


@lru_cache(maxsize=1024)
def _rows(rows: tuple[int, ...]) -> slice | list[int]:
    """An index selecting `rows`: a slice (a view) when they are consecutive."""
    if list(rows) == list(range(rows[0], rows[0] + len(rows))):
        return slice(rows[0], rows[0] + len(rows))
    return list(rows)


# ---------------------------------------------------------------------- reductions


def segment_reduce(
    ufunc: np.ufunc, values: np.ndarray, starts: np.ndarray, ends: np.ndarray, empty: float
) -> np.ndarray:
    """ufunc reduced over values[s:e] for each (s, e); `empty` where s == e."""
    if starts.size <= FEW:
        return np.array(
            [
                ufunc.reduce(values[s:e]) if e > s else empty
                for s, e in zip(starts.tolist(), ends.tolist())
            ],
            dtype=np.float64,
        )
    nonempty = ends > starts
    if nonempty.all():
        out, selected = None, slice(None)
    else:
        out = np.full(starts.shape, empty, dtype=np.float64)
        selected = np.flatnonzero(nonempty)
        if not selected.size:
            return out
    # One sentinel so that an end equal to len(values) is a valid index.
    padded = np.concatenate([values, values[:1]])
    index = np.column_stack([starts[selected], ends[selected]]).ravel()
    reduced = ufunc.reduceat(padded, index)[0::2]
    if out is None:
        return reduced.astype(np.float64, copy=False)
    out[selected] = reduced
    return out


def segment_sum(
    starts: np.ndarray,
    ends: np.ndarray,
    term: Callable[[np.ndarray, np.ndarray | int], np.ndarray],
) -> np.ndarray:
    """Sum over each [s, e) of term(element positions, their query numbers, or the one
    query's number), materialised in chunks of about CHUNK elements."""
    if starts.size <= FEW:
        return np.array(
            [
                term(np.arange(s, e), q).sum() if e > s else 0.0
                for q, (s, e) in enumerate(zip(starts.tolist(), ends.tolist()))
            ],
            dtype=np.float64,
        )
    lengths = ends - starts
    out = np.zeros(starts.shape, dtype=np.float64)
    nonempty = np.flatnonzero(lengths > 0)
    if not nonempty.size:
        return out
    totals = np.cumsum(lengths[nonempty])
    if totals[-1] <= CHUNK:
        edges = [0, nonempty.size]
    else:
        # Chunk k takes the queries whose running total of elements ends in [k, k+1) * CHUNK.
        chunk = (totals - 1) // CHUNK
        edges = [0, *(np.flatnonzero(np.diff(chunk)) + 1).tolist(), nonempty.size]
    for a, b in zip(edges[:-1], edges[1:]):
        queries = nonempty[a:b]
        sizes = lengths[queries]
        before = int(totals[a - 1]) if a else 0
        offsets = totals[a:b] - sizes - before
        owner = np.repeat(np.arange(queries.size), sizes)
        element = np.arange(int(totals[b - 1]) - before) + (starts[queries] - offsets)[owner]
        out[queries] = np.add.reduceat(term(element, queries[owner]), offsets)
    return out


def previous_same(keys: np.ndarray, group: np.ndarray | None) -> np.ndarray:
    """Per event, the position of the key's last earlier event with the same value (-1: none);
    len(keys) for a missing value, which is never new and never matches."""
    n = keys.size
    position = np.arange(n)
    if group is None:
        order = np.lexsort((position, keys))
        same = keys[order][1:] == keys[order][:-1]
    else:
        order = np.lexsort((position, keys, group))
        same = (keys[order][1:] == keys[order][:-1]) & (group[order][1:] == group[order][:-1])
    out = np.full(n, -1, dtype=np.int64)
    out[order[1:][same]] = order[:-1][same]
    out[keys == 0] = n
    return out


# ---------------------------------------------------------------------- quantities


def _total(query: WindowQuery, source: str, previous: bool, rows: tuple[int, ...]):
    """(sum, number of present values) over each window; missing values are skipped."""
    starts, ends = query.bounds(rows, previous)
    values = query.events.numeric[source]
    present = query.present(source)
    if present is None:
        sums = segment_reduce(np.add, values, starts, ends, 0.0)
        counts = (ends - starts).astype(np.float64)
    else:
        sums = segment_reduce(np.add, np.where(present, values, 0.0), starts, ends, 0.0)
        counts = segment_reduce(np.add, present.astype(np.float64), starts, ends, 0.0)
    shape = (len(rows), -1)
    return sums.reshape(shape), counts.reshape(shape)


def _spread(query: WindowQuery, source: str, previous: bool, rows: tuple[int, ...]):
    """Sum of squared deviations from each window's mean (two-pass)."""
    sums, counts = query.quantity("total", source, previous, rows)
    means = (sums / np.maximum(counts, 1.0)).ravel()
    starts, ends = query.bounds(rows, previous)
    values = query.events.numeric[source]

    def squared(element: np.ndarray, owner: np.ndarray) -> np.ndarray:
        deviation = values[element] - means[owner]
        return np.where(np.isnan(deviation), 0.0, deviation * deviation)

    return segment_sum(starts, ends, squared).reshape(len(rows), -1)


def _extreme(ufunc: np.ufunc) -> Callable:
    def compute(query: WindowQuery, source: str, previous: bool, rows: tuple[int, ...]):
        starts, ends = query.bounds(rows, previous)
        # fmin/fmax skip NaN; a window without a value stays NaN.
        values = segment_reduce(ufunc, query.events.numeric[source], starts, ends, np.nan)
        return values.reshape(len(rows), -1)

    return compute


def _distinct(query: WindowQuery, source: str, previous: bool, rows: tuple[int, ...]):
    """Distinct present values: events whose value does not occur earlier in the window."""
    starts, ends = query.bounds(rows, previous)
    last_same = query.previous_same(source)
    return segment_sum(
        starts, ends, lambda element, owner: last_same[element] < starts[owner]
    ).reshape(len(rows), -1)


def _seen(query: WindowQuery, source: str, previous: bool, rows: tuple[int, ...]):
    """Whether the transaction's value occurs among its previous events (missing: True)."""
    keys = query.events.keys[source]
    last_same = query.previous_same(source)
    mine = keys[query.positions]
    out = np.empty((len(rows), query.positions.size), dtype=bool)
    for i, row in enumerate(rows):
        starts, ends = query.start[row], query.prev_end[row]
        if query.plan.windows[row].delay == 0:
            # The previous events end at the transaction: its last same value is the test.
            out[i] = last_same[query.positions] >= starts
        else:
            hits = segment_sum(starts, ends, lambda e, o: keys[e] == mine[o])
            out[i] = (hits > 0) | (mine == 0)
    return out


def _frauds(query: WindowQuery, source: str | None, previous: bool, rows: tuple[int, ...]):
    """Events of each window whose fraud label was known at the transaction's time."""
    known = query.events.fraud_known
    if known is None:
        return np.zeros((len(rows), query.positions.size))
    starts, ends = query.bounds(rows, previous)
    fraud_at = np.flatnonzero(known != NO_FRAUD)
    first = np.searchsorted(fraud_at, starts, side="left")
    last = np.searchsorted(fraud_at, ends, side="left")
    frauds = (last - first).astype(np.float64).reshape(len(rows), -1)
    if not fraud_at.size:
        return frauds
    # Labels known at most `latency` after their transaction: a window ending that long
    # before t has all its labels known (always so in batch, whose delay >= the label delay).
    latency = int((known[fraud_at] - query.events.ts[fraud_at]).max())
    width = query.positions.size
    for i, row in enumerate(rows):
        if query.plan.windows[row].delay >= latency:
            continue
        part = slice(i * width, (i + 1) * width)
        frauds[i] -= segment_sum(
            first[part], last[part], lambda e, o: known[fraud_at[e]] > query.t[o]
        )
    return frauds


QUANTITIES: dict[str, Callable] = {
    "total": _total,
    "spread": _spread,
    "min": _extreme(np.fmin),
    "max": _extreme(np.fmax),
    "distinct": _distinct,
    "seen": _seen,
    "frauds": _frauds,
}


# ---------------------------------------------------------------------- kinds
# Each kind computes a group of features (same kind, same field) over their window rows at
# once: an array of shape (features, positions).


def count(query: WindowQuery, group: FeatureGroup) -> np.ndarray:
    return query.counts(group.rows).astype(np.float64)


def total(query: WindowQuery, group: FeatureGroup) -> np.ndarray:
    sums, counts = query.quantity("total", group.source, False, group.rows)
    return np.where(counts > 0, sums, 0.0)


def mean(query: WindowQuery, group: FeatureGroup) -> np.ndarray:
    sums, counts = query.quantity("total", group.source, False, group.rows)
    return sums / np.maximum(counts, 1.0)  # 0 for a window without values


def std(query: WindowQuery, group: FeatureGroup) -> np.ndarray:
    _, counts = query.quantity("total", group.source, False, group.rows)
    spread = query.quantity("spread", group.source, False, group.rows)
    return np.sqrt(spread / np.maximum(counts, 1.0))


def minimum(query: WindowQuery, group: FeatureGroup) -> np.ndarray:
    values = query.quantity("min", group.source, False, group.rows)
    return np.where(np.isnan(values), 0.0, values)


def maximum(query: WindowQuery, group: FeatureGroup) -> np.ndarray:
    values = query.quantity("max", group.source, False, group.rows)
    return np.where(np.isnan(values), 0.0, values)


def distinct(query: WindowQuery, group: FeatureGroup) -> np.ndarray:
    return query.quantity("distinct", group.source, False, group.rows)


def since_previous(query: WindowQuery, group: FeatureGroup) -> np.ndarray:
    pick = _rows(group.rows)
    starts, ends = query.start[pick], query.prev_end[pick]
    latest = query.events.ts[np.maximum(ends - 1, 0)]
    return np.where(ends > starts, (query.t - latest).astype(np.float64), group.defaults)


def _previous_mean(query: WindowQuery, group: FeatureGroup):
    """The transaction's value, and the count and mean of the previous events' values."""
    sums, counts = query.quantity("total", group.source, True, group.rows)
    value = query.events.numeric[group.source][query.positions]
    return value, counts, sums / np.maximum(counts, 1.0)


def ratio(query: WindowQuery, group: FeatureGroup) -> np.ndarray:
    value, counts, average = _previous_mean(query, group)
    positive = average > 0  # false without previous values (their mean is 0)
    out = np.where(positive, value / np.where(positive, average, 1.0), 1.0)
    return np.where(np.isnan(value), np.nan, out)


def zscore(query: WindowQuery, group: FeatureGroup) -> np.ndarray:
    value, counts, average = _previous_mean(query, group)
    spread = query.quantity("spread", group.source, True, group.rows)
    variance = np.maximum(spread / np.maximum(counts, 1.0), 0.0)
    # +1 keeps the score finite for entities that always see the same value.
    out = np.where(counts > 0, (value - average) / (np.sqrt(variance) + 1.0), 0.0)
    return np.where(np.isnan(value), np.nan, out)


def novelty(query: WindowQuery, group: FeatureGroup) -> np.ndarray:
    seen = query.quantity("seen", group.source, True, group.rows)
    has_previous = query.counts(group.rows, previous=True) > 0
    return (has_previous & ~seen).astype(np.float64)


def fraud_share(query: WindowQuery, group: FeatureGroup) -> np.ndarray:
    events = query.counts(group.rows)
    frauds = query.quantity("frauds", None, False, group.rows)
    return frauds / np.maximum(events, 1)  # 0 for an empty window


KINDS: dict[str, Callable[[WindowQuery, FeatureGroup], np.ndarray]] = {
    "count": count,
    "sum": total,
    "mean": mean,
    "std": std,
    "min": minimum,
    "max": maximum,
    "distinct": distinct,
    "since_previous": since_previous,
    "ratio": ratio,
    "zscore": zscore,
    "novelty": novelty,
    "fraud_share": fraud_share,
}


def evaluate(
    plan: EntityPlan,
    events: Events,
    positions: np.ndarray,
    on_feature: Callable[[str], None] | None = None,
) -> dict[str, np.ndarray]:
    """Every window feature of the entity at `positions` (float64 arrays)."""
    query = WindowQuery(plan, events, positions)
    out = {}
    for group in plan.groups:
        values = KINDS[group.kind](query, group)
        for i, feature in enumerate(group.features):
            out[feature.name] = values[i]
            if on_feature is not None:
                on_feature(feature.name)
    return out
