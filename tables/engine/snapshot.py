"""The snapshot path: every entity's packed state as of a frame's end, built in one pass.

The result is the state the stream (StreamEngine) would hold after observing every row of
the frame in arrival order (the rows stably sorted by `ts`, as in batch) and every row's
label (fraud or genuine) at its known time, `ts + labels.delay_days`. It is what
`aegis backfill` writes into the workers' changelogs, so that they start warm.

Why this equals the stream without replaying it event by event:

- Events arrive in time order, so a key's newest counted event only grows and each write
  prunes at or below the final cutoff (newest - horizon); pruning once at the end leaves
  the same events and labels. Labels only add, replace or remove label entries, whatever the
  order they come in with the transactions.
- A transaction id already in a key's state is a redelivery: not counted again, and
  nothing written (so nothing pruned either). The stream forgets an id once a write has
  pruned it, so a repeat after that counts again (`_first_deliveries`).
- The state arithmetic itself is state.py's: the event layout (`events_cells`), labels
  (`with_label`), pruning (`pruned`) and the bytes (`encode`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm import tqdm

from aegis_app.core.config import Config
from tables.engine import state as packed
from tables.engine.batch import frame_labels, frame_numbers, frame_times, require_columns
from tables.engine.keys import hash_column, key_codes, key_text
from tables.engine.plan import EntityPlan, Plan, compile_plan


@dataclass(frozen=True)
class EntityStates:
    """One entity's states: key text (as StreamEngine.keys gives it) -> packed state."""

    entity: str
    states: dict[str, bytes]

    @property
    def bytes(self) -> int:
        return sum(len(blob) for blob in self.states.values())


def build_states(
    df: pd.DataFrame, config: Config | Plan, progress: bool = False
) -> dict[str, EntityStates]:
    """Entity name -> its states as of the frame's end (a row without the entity's key
    leaves no state). `progress` shows a bar per entity."""
    plan = config if isinstance(config, Plan) else compile_plan(config)
    kept = [c for e in plan.entities.values() for c in (e.column, *e.numeric_fields, *e.key_fields)]
    require_columns(df, ("transaction_id", "ts", *dict.fromkeys(kept)))
    ts = frame_times(df["ts"])
    arrival = np.argsort(ts, kind="stable")
    id_hashes = hash_column(df["transaction_id"].to_numpy(dtype=object), numeric=False)
    labels = frame_labels(df)
    return {
        name: EntityStates(
            name, dict(_entity_states(entity, df, ts, arrival, id_hashes, labels, progress))
        )
        for name, entity in plan.entities.items()
    }


def _entity_states(
    entity: EntityPlan,
    df: pd.DataFrame,
    ts: np.ndarray,
    arrival: np.ndarray,
    id_hashes: np.ndarray,
    labels: np.ndarray,
    progress: bool,
) -> Iterator[tuple[str, bytes]]:
    values = df[entity.column].to_numpy(dtype=object)
    codes = key_codes(values, entity.key_is_numeric)
    rows = arrival[codes[arrival] >= 0]  # rows with a key, in arrival order
    rows = rows[np.argsort(codes[rows], kind="stable")]  # by key, arrival order within
    if not rows.size:
        return
    rows = rows[_first_deliveries(codes[rows], ts[rows], id_hashes[rows], entity.horizon)]
    starts = np.flatnonzero(np.r_[True, codes[rows][1:] != codes[rows][:-1]])
    ends = np.r_[starts[1:], rows.size]
    # Cells only for the events the final pruning keeps (pruned() below still decides).
    newest = np.maximum.reduceat(ts[rows], starts)
    kept = ts[rows] > np.repeat(newest - entity.horizon, ends - starts)
    chosen = rows[kept]
    cells = packed.events_cells(
        entity,
        id_hashes[chosen],
        {f: frame_numbers(df, f)[chosen] for f in entity.numeric_fields},
        {
            f: hash_column(df[f].to_numpy(dtype=object)[chosen], numeric_key)
            for f, numeric_key in zip(entity.key_fields, entity.key_fields_numeric, strict=True)
        },
    )
    kept_ends = np.cumsum(kept)[ends - 1]
    kept_starts = np.r_[0, kept_ends[:-1]]
    by_key = _label_events(entity, codes, ts, id_hashes, labels, arrival)
    no_labels = np.empty((3, 0), np.int64)
    for k in tqdm(range(starts.size), desc=entity.name, unit="key", disable=not progress):
        a, b = kept_starts[k], kept_ends[k]
        state = packed.EntityState(ts=ts[chosen[a:b]], cells=cells[:, a:b], labels=no_labels)
        code = int(codes[rows[starts[k]]])
        for id_hash, tx_ts, known_at, fraud in by_key.get(code, ()):
            state = packed.with_label(state, id_hash, tx_ts, known_at, fraud)
        state = packed.pruned(state, entity.horizon)
        yield key_text(values[rows[starts[k]]], entity.key_is_numeric), packed.encode(entity, state)


def _first_deliveries(
    codes: np.ndarray, ts: np.ndarray, ids: np.ndarray, horizon: int
) -> np.ndarray:
    """Which events (sorted by key, arrival order within) the stream counts: not those
    whose transaction id is still in the key's state (a redelivery, or a reused id)."""
    keep = np.ones(codes.size, dtype=bool)
    repeated = pd.DataFrame({"key": codes, "id": ids}).duplicated(keep=False).to_numpy()
    # Rare: walk only the keys that have a repeat, as the stream would.
    for key in np.unique(codes[repeated]):
        first, last = np.searchsorted(codes, [key, key + 1])
        counted_at: dict[int, int] = {}  # id hash -> time of its counted event
        newest = 0  # the newest counted event (set with the first): writes prune from it
        for i in range(first, last):
            seen = counted_at.get(int(ids[i]))
            if seen is not None and seen > newest - horizon:
                keep[i] = False  # still in the state: a redelivery, which writes nothing
            else:
                counted_at[int(ids[i])] = newest = int(ts[i])
    return keep


def _label_events(
    entity: EntityPlan,
    codes: np.ndarray,
    ts: np.ndarray,
    id_hashes: np.ndarray,
    labels: np.ndarray,
    arrival: np.ndarray,
) -> dict[int, list[tuple[int, int, int, bool]]]:
    """Key code -> its labels in the order the stream takes them (known time, then
    arrival): (id hash, transaction time, known at, fraud). A genuine label matters only
    to an id with a fraud label (it removes it), so the others are left out."""
    if not entity.labels:
        return {}
    # Known time is transaction time + one delay, so arrival order is known-time order.
    rows = arrival[(codes[arrival] >= 0) & ~np.isnan(labels[arrival])]
    fraud = labels[rows] == 1
    pairs = pd.DataFrame({"key": codes[rows], "id": id_hashes[rows], "fraud": fraud})
    relevant = pairs.groupby(["key", "id"], sort=False)["fraud"].transform("any").to_numpy()
    out: dict[int, list[tuple[int, int, int, bool]]] = {}
    for row, is_fraud in zip(rows[relevant].tolist(), fraud[relevant].tolist(), strict=True):
        tx_ts = int(ts[row])
        out.setdefault(int(codes[row]), []).append(
            (int(id_hashes[row]), tx_ts, tx_ts + entity.label_delay, is_fraud)
        )
    return out
