"""The batch path: the features of every row of a normalised frame, vectorised.

Arrival order is the frame's rows stably sorted by `ts` (equal times keep the file's
order), exactly as if the stream had read the rows in that order. For each entity the
rows are grouped by key (a stable sort, so each key's events stay in arrival order) and
every window feature is computed for all rows at once by the same functions the stream
calls for one (tables.engine.windows). A row's fraud label (label == 1) becomes known
`labels.delay_days` after its transaction, as the replay publishes it.

A transaction id that repeats for the same entity key is a redelivery: it is not an event
again and gets the features of its first occurrence, as in the stream.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from aegis_app.core.config import Config
from tables.engine import transaction, windows
from tables.engine.keys import hash_column, key_codes
from tables.engine.plan import EntityPlan, Plan, RecordError, compile_plan

MAX_SORT_KEY = 2**62


def compute_features(
    df: pd.DataFrame, config: Config | Plan, progress: bool = False
) -> pd.DataFrame:
    """One row of features per input row, in input order, columns `config.feature_names`:
    floats, and str/None for `category` features."""
    plan = config if isinstance(config, Plan) else compile_plan(config)
    require_columns(df, plan.columns)
    ts = frame_times(df["ts"])
    labels = frame_labels(df)
    ids = df["transaction_id"].to_numpy(dtype=object)
    repeated_ids = bool(pd.Series(ids).duplicated().any())
    arrival = np.argsort(ts, kind="stable")
    out: dict[str, np.ndarray] = {}
    with tqdm(total=len(plan.names), desc="features", unit="feature", disable=not progress) as bar:
        for entity in plan.entities.values():
            out.update(
                _entity_features(entity, df, ts, labels, ids, arrival, repeated_ids, bar.update)
            )
        columns = _Columns(df)
        for name, values in transaction.evaluate(plan.transaction_features, columns, ts).items():
            out[name] = values
            bar.update(1)
    # Text columns stay object (str or None): pandas would otherwise infer its string dtype,
    # which turns None into NaN.
    return pd.DataFrame(
        {
            name: pd.Series(
                out[name],
                index=df.index,
                dtype=object if name in plan.text_features else np.float64,
            )
            for name in plan.names
        },
        index=df.index,
    )


class _Columns(dict):
    """Frame columns as numpy arrays, read on first use."""

    def __init__(self, df: pd.DataFrame) -> None:
        super().__init__()
        self.df = df

    def __missing__(self, name: str) -> np.ndarray:
        column = self.df[name]
        values = column.to_numpy()
        if values.dtype.kind in "OUST":  # text (object or pandas' string dtype)
            values = column.to_numpy(dtype=object)
        self[name] = values
        return values


def _entity_features(
    entity: EntityPlan,
    df: pd.DataFrame,
    ts: np.ndarray,
    labels: np.ndarray,
    ids: np.ndarray,
    arrival: np.ndarray,
    repeated_ids: bool,
    advance: Any,
) -> dict[str, np.ndarray]:
    codes = key_codes(df[entity.column].to_numpy(dtype=object), entity.key_is_numeric)
    rows = arrival[codes[arrival] >= 0]  # rows with a key, in arrival order
    repeats = firsts = np.empty(0, dtype=np.int64)
    if repeated_ids and rows.size:
        frame = pd.DataFrame({"key": codes[rows], "id": ids[rows]})
        again = frame.duplicated(keep="first").to_numpy()
        if again.any():
            group = frame.groupby(["key", "id"], sort=False).ngroup().to_numpy()
            first_of_group = np.empty(group.max() + 1, dtype=np.int64)
            first_of_group[group[~again]] = rows[~again]
            repeats, firsts = rows[again], first_of_group[group[again]]
            rows = rows[~again]
    # Window order: by key, each key's events in arrival order.
    rows = rows[np.argsort(codes[rows], kind="stable")]
    out = {f.name: np.full(len(df), np.nan) for f in entity.features}
    if not rows.size:
        advance(len(entity.features))
        return out
    events = _events(entity, df, rows, codes[rows], ts[rows], labels[rows])
    values = windows.evaluate(entity, events, np.arange(rows.size), on_feature=lambda _: advance(1))
    for name, column in values.items():
        out[name][rows] = column
        out[name][repeats] = out[name][firsts]
    return out


def _events(
    entity: EntityPlan,
    df: pd.DataFrame,
    rows: np.ndarray,
    group: np.ndarray,
    ts: np.ndarray,
    labels: np.ndarray,
) -> windows.Events:
    lowest, highest = int(ts.min()), int(ts.max())
    # Keys laid end to end on one axis: a key's times, offset past the previous key's.
    stride = highest - lowest + 2
    if (int(group.max()) + 1) * stride >= MAX_SORT_KEY:
        raise ValueError(
            f"{entity.name}: too many keys over too long a time span to index "
            f"({int(group.max()) + 1} keys x {stride} s)"
        )
    order = group * stride + (ts - lowest)
    numeric = np.empty((len(entity.numeric_fields), rows.size), dtype=np.float64)
    for i, name in enumerate(entity.numeric_fields):
        numeric[i] = frame_numbers(df, name)[rows]
    keys = np.empty((len(entity.key_fields), rows.size), dtype=np.uint64)
    for i, (name, numeric_key) in enumerate(zip(entity.key_fields, entity.key_fields_numeric)):
        keys[i] = hash_column(df[name].to_numpy(dtype=object)[rows], numeric_key)
    fraud_known = None
    if entity.labels:
        fraud_known = np.where(labels == 1, ts + entity.label_delay, windows.NO_FRAUD)
    return windows.Events(
        ts=ts,
        order=order,
        floor=group * stride - 1,
        group=group,
        numeric=numeric,
        keys=keys,
        fraud_known=fraud_known,
    )


def require_columns(df: pd.DataFrame, columns: tuple[str, ...]) -> None:
    """RecordError naming the columns the frame lacks."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise RecordError(
            f"frame: no column {', '.join(map(repr, missing))} (the engine reads normalised "
            "records: aegis_app.core.source)"
        )


def frame_labels(df: pd.DataFrame) -> np.ndarray:
    """Each row's label as float (1 fraud, 0 genuine, NaN none; no column: none known)."""
    if "label" not in df:
        return np.full(len(df), np.nan)
    return pd.to_numeric(df["label"], errors="coerce").to_numpy(dtype=np.float64)


def frame_times(column: pd.Series) -> np.ndarray:
    """The ts column as int64 epoch seconds (RecordError naming a row that is not)."""
    values = column.to_numpy()
    if values.dtype.kind in "iu":
        return values.astype(np.int64)
    try:
        numbers = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise RecordError("frame: ts must be int epoch seconds") from None
    bad = ~np.isfinite(numbers) | (numbers != np.round(numbers))
    if bad.any():
        row = column.index[int(np.argmax(bad))]
        raise RecordError(f"frame: ts must be int epoch seconds (row {row!r}: {values[bad][0]!r})")
    return numbers.astype(np.int64)


def frame_numbers(df: pd.DataFrame, name: str) -> np.ndarray:
    """A numeric column as float64 (NaN when missing)."""
    try:
        return np.asarray(pd.to_numeric(df[name]), dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise RecordError(f"frame: {name!r} must be numeric ({exc})") from None
