"""Fraud patterns beyond the Handbook's three, to start mid-stream (drift experiments).

Scenario 4, spending bursts: from a given day on, a few stolen cards a day are spent in
a burst, purchases minutes apart at terminals anywhere on the grid (not the cardholder's
own), each for an amount typical of that cardholder, so the amount gives nothing away.
The Handbook's scenarios are about amounts and compromised terminals, so a model trained
before the bursts start has not learnt that velocity means fraud; the card's velocity
features (1-day count, time since the previous transaction, distinct terminals in a day)
do describe a burst, so a model retrained on its labels can learn it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from aegis_app.harness.simulator import COLUMNS, DAY

SPENDING_BURST = 4
CARDS_PER_DAY = 2
BURST_SIZE = (5, 11)  # purchases per burst, [low, high)
BURST_GAP_MEAN_S = 180.0  # mean seconds between purchases of a burst


def add_spending_bursts(
    data: pd.DataFrame,
    from_day: int,
    cards_per_day: int = CARDS_PER_DAY,
    seed: int = 0,
) -> pd.DataFrame:
    """`data` (simulator schema) with spending bursts from `from_day` (0 = first day).

    Returns a new frame in time order, transaction ids renumbered 0..n-1 in that order
    (as the simulator numbers them), bursts labelled fraud with TX_FRAUD_SCENARIO 4.
    """
    if data.empty:
        return data.copy()
    rng = np.random.default_rng([seed, 4])
    start = pd.Timestamp(data["TX_DATETIME"].min()).normalize()
    days = int(data["TX_TIME_DAYS"].max()) + 1
    genuine = data[data["TX_FRAUD"] == 0].groupby("CUSTOMER_ID")["TX_AMOUNT"]
    typical = pd.DataFrame({"mean": genuine.mean(), "std": genuine.std().fillna(0.0)})
    customers = typical.index.to_numpy()
    terminals = np.unique(data["TERMINAL_ID"].to_numpy())
    seconds, cards, places, amounts = [], [], [], []
    for day in range(max(from_day, 0), days):
        chosen = rng.choice(customers, min(cards_per_day, customers.size), replace=False)
        for card in chosen:
            n = int(rng.integers(*BURST_SIZE))
            first = day * DAY + int(rng.integers(0, DAY - 3600))
            offsets = np.cumsum(rng.exponential(BURST_GAP_MEAN_S, n)).astype(np.int64)
            times = np.minimum(first + offsets, (day + 1) * DAY - 1)
            seconds.append(times)
            cards.append(np.full(n, card))
            places.append(rng.choice(terminals, n))
            mean, std = typical.loc[card, "mean"], typical.loc[card, "std"]
            amounts.append(np.round(np.abs(rng.normal(mean, std, n)), 2))
    if not seconds:
        return data.copy()
    burst_seconds = np.concatenate(seconds)
    bursts = pd.DataFrame(
        {
            "TRANSACTION_ID": -1,
            "TX_DATETIME": start + pd.to_timedelta(burst_seconds, unit="s"),
            "CUSTOMER_ID": np.concatenate(cards),
            "TERMINAL_ID": np.concatenate(places),
            "TX_AMOUNT": np.concatenate(amounts),
            "TX_TIME_SECONDS": burst_seconds,
            "TX_TIME_DAYS": burst_seconds // DAY,
            "TX_FRAUD": 1,
            "TX_FRAUD_SCENARIO": SPENDING_BURST,
        }
    )
    merged = pd.concat([data[list(COLUMNS)], bursts], ignore_index=True)
    # Stable: the generated rows keep their order; a burst row follows same-second ones.
    merged = merged.sort_values("TX_TIME_SECONDS", kind="stable").reset_index(drop=True)
    merged["TRANSACTION_ID"] = np.arange(len(merged), dtype=np.int64)
    return merged
