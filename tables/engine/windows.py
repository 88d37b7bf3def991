"""The window arithmetic: one compiled kernel, the same for stream and batch.

Both paths hand :func:`kernel` an entity's events in *window order* (grouped by key, each
key's events sorted by time, ties in arrival order) and the positions of the transactions to
answer for: the batch through :func:`evaluate` (:class:`Events`: every key's events, every
position), the stream from its compiled step (tables.engine.stream: one key's state, one
position). A window of a transaction at position p,
time t, is a range [start, end) of positions:

    start = first position of the key with time > t - delay - span
    end   = one past the last position of the key with time <= t - delay, at most p + 1
            (with delay 0: the transaction itself and earlier-arriving same-second ones)
    previous events: [start, min(end, p))

The kernel (:func:`kernel`, compiled by numba: it is required, there is no uncompiled
variant that could round otherwise) walks the positions one by one and, for each, computes
every quantity of the entity's plan (:class:`tables.engine.plan.Program`) once over its
window, then every feature from them. Sums, minima and maxima are reduced over each window's
own values (no running sums over a whole history: their rounding would depend on how much
history a path holds), a sum in numpy's pairwise order (:func:`_pairwise_sum`: the value of
``np.add.reduce`` over the window, whether one transaction is answered or a million);
spreads are two-pass (mean first, then squared deviations), so a window of equal values has
spread 0 in both paths. Cost: the windows' total length (labels: the frauds in the windows).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numba
import numpy as np

from tables.engine.plan import (
    FEATURE_FIELD,
    FEATURE_FIRST,
    FEATURE_KIND,
    FEATURE_ROW,
    FEATURE_SECOND,
    KIND_CODES,
    QUANTITY_CODES,
    SLOT_FIELD,
    SLOT_PREVIOUS,
    SLOT_QUANTITY,
    SLOT_ROW,
    SLOT_TOTAL,
    EntityPlan,
)

NO_FRAUD = np.iinfo(np.int64).max  # fraud_known of an event without a known fraud label
NONE = np.empty(0, dtype=np.int64)  # no floor or group (one key), no labels
BLOCK = 128  # numpy's pairwise summation block (PW_BLOCKSIZE)

# Kind and quantity codes, as constants the kernel compiles in.
COUNT, SUM, MEAN, STD, MIN_KIND, MAX_KIND, DISTINCT_KIND, SINCE_PREVIOUS = (
    KIND_CODES[k]
    for k in ("count", "sum", "mean", "std", "min", "max", "distinct", "since_previous")
)
RATIO, ZSCORE, NOVELTY, FRAUD_SHARE = (
    KIND_CODES[k] for k in ("ratio", "zscore", "novelty", "fraud_share")
)
TOTAL, SPREAD, MIN, MAX, DISTINCT, SEEN, FRAUDS = (
    QUANTITY_CODES[q] for q in ("total", "spread", "min", "max", "distinct", "seen", "frauds")
)


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
    numeric: np.ndarray  # float64 (numeric fields, events), NaN when missing
    keys: np.ndarray  # uint64 (key fields, events): value hashes, 0 when missing
    fraud_known: np.ndarray | None  # int64: when the event's fraud label became known


def evaluate(
    plan: EntityPlan,
    events: Events,
    positions: np.ndarray,
    on_feature: Callable[[str], None] | None = None,
) -> dict[str, np.ndarray]:
    """Every window feature of the entity at `positions` (float64 arrays)."""
    program = plan.program
    values = np.empty((len(plan.features), len(positions)), dtype=np.float64)
    kernel(
        program.slots,
        program.features,
        program.default,
        program.windows,
        _int64(events.ts),
        _int64(events.order),
        NONE if events.floor is None else _int64(events.floor),
        NONE if events.group is None else _int64(events.group),
        np.ascontiguousarray(events.numeric, dtype=np.float64),
        np.ascontiguousarray(events.keys, dtype=np.uint64),
        NONE if events.fraud_known is None else _int64(events.fraud_known),
        _int64(positions),
        values,
    )
    out = {}
    for i, feature in enumerate(plan.features):
        out[feature.name] = values[i]
        if on_feature is not None:
            on_feature(feature.name)
    return out


def _int64(values: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(values, dtype=np.int64)


# ---------------------------------------------------------------------- the kernel

JIT = {"cache": True, "nogil": True}


@numba.njit(**JIT)
def _block_sum(a: np.ndarray, lo: int, n: int) -> float:
    """numpy's pairwise_sum of a[lo:lo + n] (loops_utils.h: eight accumulators per block
    of at most BLOCK, halves above it)."""
    if n < 8:
        res = 0.0
        for i in range(lo, lo + n):
            res += a[i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = 8
    while i < n - (n % 8):
        j = lo + i
        r0 += a[j]
        r1 += a[j + 1]
        r2 += a[j + 2]
        r3 += a[j + 3]
        r4 += a[j + 4]
        r5 += a[j + 5]
        r6 += a[j + 6]
        r7 += a[j + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@numba.njit(**JIT)
def _pairwise_sum(a: np.ndarray, n: int) -> float:
    """np.add.reduce(a[:n]), bit for bit: its identity (0.0) plus numpy's pairwise sum, which
    sums halves (the first a multiple of 8) above BLOCK. The recursion is unrolled onto a
    stack: numba's cache does not load recursive functions reliably."""
    if n <= BLOCK:
        return 0.0 + _block_sum(a, 0, n)
    frame_lo = np.empty(64, dtype=np.int64)  # halves nest at most log2(n) deep
    frame_n = np.empty(64, dtype=np.int64)
    frame_phase = np.empty(64, dtype=np.int64)  # 0: left half next, 1: right, 2: add them
    sums = np.empty(65, dtype=np.float64)
    frames, done = 1, 0
    frame_lo[0], frame_n[0], frame_phase[0] = 0, n, 0
    while frames:
        top = frames - 1
        lo, size, phase = frame_lo[top], frame_n[top], frame_phase[top]
        if size <= BLOCK:
            sums[done] = _block_sum(a, lo, size)
            done += 1
            frames -= 1
            continue
        half = size // 2
        half -= half % 8
        if phase == 2:
            sums[done - 2] = sums[done - 2] + sums[done - 1]
            done -= 1
            frames -= 1
            continue
        frame_phase[top] = phase + 1
        frame_lo[frames] = lo if phase == 0 else lo + half
        frame_n[frames] = half if phase == 0 else size - half
        frame_phase[frames] = 0
        frames += 1
    return 0.0 + sums[0]


@numba.njit(**JIT)
def _search_right(a: np.ndarray, x: int) -> int:
    """np.searchsorted(a, x, side="right")."""
    lo, hi = 0, a.size
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] <= x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(**JIT)
def _search_left(a: np.ndarray, x: int) -> int:
    """np.searchsorted(a, x, side="left")."""
    lo, hi = 0, a.size
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(**JIT)
def _previous_same(keys: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Per event, the position of the key's last earlier event with the same value (-1: none);
    len(keys) for a missing value (0), which is never new and never matches. Events are in
    window order, so among equal values in position order the groups ascend."""
    n = keys.size
    out = np.full(n, -1, dtype=np.int64)
    by_value = np.argsort(keys, kind="mergesort")  # stable: positions ascend per value
    for i in range(1, n):
        a, b = by_value[i - 1], by_value[i]
        if keys[a] == keys[b] and (group.size == 0 or group[a] == group[b]):
            out[b] = a
    for i in range(n):
        if keys[i] == 0:
            out[i] = n
    return out


@numba.njit(**JIT)
def kernel(
    slots,
    features,
    default,
    windows,
    ts,
    order,
    floor,
    group,
    numeric,
    keys,
    fraud_known,
    positions,
    out,
):
    """Every window feature (plan.Program: `slots`, `features`, `default`, `windows`) at
    each of `positions` into `out` (features, positions); floor, group and fraud_known
    empty: none (one key, no labels)."""
    slot_quantity, slot_field = slots[SLOT_QUANTITY], slots[SLOT_FIELD]
    slot_previous, slot_row, slot_total = slots[SLOT_PREVIOUS], slots[SLOT_ROW], slots[SLOT_TOTAL]
    kind, row, field = features[FEATURE_KIND], features[FEATURE_ROW], features[FEATURE_FIELD]
    first, second = features[FEATURE_FIRST], features[FEATURE_SECOND]
    spans, delays = windows[0], windows[1]
    n = ts.size
    slots = slot_quantity.size
    start = np.empty(spans.size, dtype=np.int64)
    end = np.empty(spans.size, dtype=np.int64)
    prev_end = np.empty(spans.size, dtype=np.int64)
    value = np.empty(slots, dtype=np.float64)  # per slot: sum, spread, extreme, count...
    present = np.empty(slots, dtype=np.float64)  # per total slot: values present
    scratch = np.empty(n, dtype=np.float64)  # a window's terms, summed pairwise
    same_needed = False
    for k in range(slots):
        if slot_quantity[k] == DISTINCT or slot_quantity[k] == SEEN:
            same_needed = True
    last_same = np.empty((keys.shape[0] if same_needed else 0, n), dtype=np.int64)
    for f in range(last_same.shape[0]):
        last_same[f] = _previous_same(keys[f], group)
    fraud_at = np.flatnonzero(fraud_known != NO_FRAUD) if fraud_known.size else NONE

    for q in range(positions.size):
        p = positions[q]
        t = ts[p]
        for w in range(spans.size):
            high = order[p] - delays[w]
            low = high - spans[w]
            if floor.size:
                low = max(low, floor[p])
                high = max(high, floor[p])
            start[w] = _search_right(order, low)
            end[w] = min(_search_right(order, high), p + 1)
            prev_end[w] = min(end[w], p)

        for k in range(slots):
            w = slot_row[k]
            s = start[w]
            e = prev_end[w] if slot_previous[k] else end[w]
            quantity = slot_quantity[k]
            if quantity == TOTAL:
                values = numeric[slot_field[k]]
                count = 0
                for j in range(s, e):
                    v = values[j]
                    if np.isnan(v):
                        scratch[j - s] = 0.0
                    else:
                        scratch[j - s] = v
                        count += 1
                value[k] = _pairwise_sum(scratch, e - s)
                present[k] = count
            elif quantity == SPREAD:
                values = numeric[slot_field[k]]
                mean = value[slot_total[k]] / max(present[slot_total[k]], 1.0)
                for j in range(s, e):
                    deviation = values[j] - mean
                    scratch[j - s] = 0.0 if np.isnan(deviation) else deviation * deviation
                value[k] = _pairwise_sum(scratch, e - s)
            elif quantity == MIN or quantity == MAX:
                # fmin / fmax: missing values skipped, NaN without any.
                values = numeric[slot_field[k]]
                extreme = np.nan
                for j in range(s, e):
                    v = values[j]
                    if np.isnan(extreme) or (v < extreme if quantity == MIN else v > extreme):
                        extreme = v
                value[k] = extreme
            elif quantity == DISTINCT:
                # Distinct present values: events whose value does not occur earlier in it.
                same = last_same[slot_field[k]]
                count = 0
                for j in range(s, e):
                    if same[j] < s:
                        count += 1
                value[k] = count
            elif quantity == SEEN:
                # Whether the transaction's value occurs among its previous events (missing:
                # yes); with delay 0 they end at the transaction: its last same value tells.
                mine = keys[slot_field[k], p]
                if delays[w] == 0:
                    seen = last_same[slot_field[k], p] >= s
                else:
                    seen = mine == 0
                    for j in range(s, e):
                        if keys[slot_field[k], j] == mine:
                            seen = True
                            break
                value[k] = 1.0 if seen else 0.0
            elif quantity == FRAUDS:
                # Events of the window whose fraud label was known at the transaction's time.
                count = 0
                if fraud_known.size:
                    for j in range(_search_left(fraud_at, s), _search_left(fraud_at, e)):
                        if fraud_known[fraud_at[j]] <= t:
                            count += 1
                value[k] = count

        for i in range(kind.size):
            w = row[i]
            s = start[w]
            a = first[i]
            code = kind[i]
            if code == COUNT:
                result = float(end[w] - s)
            elif code == SUM:
                result = value[a] if present[a] > 0 else 0.0
            elif code == MEAN:
                result = value[a] / max(present[a], 1.0)  # 0 for a window without values
            elif code == STD:
                result = np.sqrt(value[second[i]] / max(present[a], 1.0))
            elif code == MIN_KIND or code == MAX_KIND:
                result = 0.0 if np.isnan(value[a]) else value[a]
            elif code == DISTINCT_KIND:
                result = value[a]
            elif code == SINCE_PREVIOUS:
                e = prev_end[w]
                result = float(t - ts[e - 1]) if e > s else default[i]
            elif code == RATIO or code == ZSCORE:
                own = numeric[field[i], positions[q]]
                average = value[a] / max(present[a], 1.0)
                if code == RATIO:
                    # No previous values: their mean is 0, the ratio 1.
                    result = own / average if average > 0 else 1.0
                elif present[a] > 0:
                    variance = value[second[i]] / max(present[a], 1.0)
                    if variance < 0.0:  # np.maximum(variance, 0.0), NaN kept
                        variance = 0.0
                    # +1 keeps the score finite for entities that always see the same value.
                    result = (own - average) / (np.sqrt(variance) + 1.0)
                else:
                    result = 0.0
                if np.isnan(own):
                    result = np.nan
            elif code == NOVELTY:
                result = 1.0 if prev_end[w] > s and value[a] == 0.0 else 0.0
            else:  # FRAUD_SHARE: 0 for an empty window
                result = value[a] / float(max(end[w] - s, 1))
            out[i, q] = result
