"""Batch feature computation: replays a transaction file through the stream's own state.

Training and evaluation call this; the workers call the same `CardState` and
`TerminalState` one event at a time, so batch and stream features cannot drift apart.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from tqdm import tqdm

from aegis_app.core import timerules
from tables.features import (
    ALL_FEATURES,
    DEFAULT_DELAY_DAYS,
    LONGEST_WINDOW_DAYS,
    CardState,
    TerminalState,
    assemble,
)


def warmup_days(delay_days: int = DEFAULT_DELAY_DAYS) -> int:
    """How much history before a target window these features need."""
    return timerules.warmup_days(LONGEST_WINDOW_DAYS, delay_days)


def epoch_seconds(datetimes: pd.Series) -> np.ndarray:
    """UTC epoch seconds of a datetime column (naive values are taken as UTC)."""
    values = pd.to_datetime(datetimes)
    if values.dt.tz is not None:
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    return values.to_numpy(dtype="datetime64[s]").astype(np.int64)


def compute_features(
    df: pd.DataFrame,
    delay_days: int = DEFAULT_DELAY_DAYS,
    progress: bool = False,
) -> pd.DataFrame:
    """Features of every row of a simulator-schema frame, in its row order.

    Rows are processed sorted by (TX_DATETIME, TRANSACTION_ID), as the stream sees them.
    A row's label (TX_FRAUD; missing = unknown) becomes known `delay_days` after the
    transaction, exactly as `aegis replay` publishes it on aegis.labels.
    """
    ts = epoch_seconds(df["TX_DATETIME"])
    order = np.lexsort((df["TRANSACTION_ID"].to_numpy(), ts))
    tx_ids = df["TRANSACTION_ID"].to_numpy(dtype=np.int64)[order].tolist()
    cards = df["CUSTOMER_ID"].to_numpy(dtype=np.int64)[order].tolist()
    terminals = df["TERMINAL_ID"].to_numpy(dtype=np.int64)[order].tolist()
    amounts = df["TX_AMOUNT"].to_numpy(dtype=np.float64)[order].tolist()
    times = ts[order].tolist()
    if "TX_FRAUD" in df:
        labels = pd.to_numeric(df["TX_FRAUD"], errors="coerce").to_numpy(dtype=np.float64)[order]
    else:
        labels = np.full(len(df), np.nan)
    labels = labels.tolist()

    card_states: dict[int, CardState] = {}
    terminal_states: dict[int, TerminalState] = {}
    out = np.empty((len(df), len(ALL_FEATURES)), dtype=np.float64)
    rows = range(len(df))
    for i in tqdm(rows, desc="features", unit="tx", disable=not progress, mininterval=1.0):
        card = card_states.get(cards[i])
        if card is None:
            card = card_states[cards[i]] = CardState()
        terminal = terminal_states.get(terminals[i])
        if terminal is None:
            terminal = terminal_states[terminals[i]] = TerminalState()
        card_part = card.observe(tx_ids[i], times[i], amounts[i], terminals[i])
        terminal_part = terminal.observe(tx_ids[i], times[i], delay_days)
        label = labels[i]
        if label == label:  # not NaN: the label is published delay days later
            known_at = timerules.label_known_at(times[i], delay_days)
            terminal.add_label(tx_ids[i], times[i], known_at, bool(label))
        features = assemble(amounts[i], times[i], card_part, terminal_part)
        out[order[i]] = [features[name] for name in ALL_FEATURES]
    return pd.DataFrame(out, columns=list(ALL_FEATURES), index=df.index)
