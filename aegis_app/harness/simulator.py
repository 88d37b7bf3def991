"""Synthetic card transactions with labelled frauds.

Statistically equivalent to the simulator of the Fraud Detection Handbook (Le Borgne et al.,
"Reproducible Machine Learning for Credit Card Fraud Detection - Practical Handbook", 3.2),
written from its description and vectorised with numpy: customers and terminals on a
100 x 100 grid, each customer spending at the terminals within RADIUS of them, then three
fraud scenarios laid over the genuine transactions.

Every random draw comes from a stream keyed by (seed, stream, index), so the output depends
only on the arguments, never on iteration order or global random state.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree
from tqdm import tqdm

from aegis_app.core.timerules import DAY

GRID = 100.0
RADIUS = 5.0
# Time of day of a purchase: Normal around noon; draws outside the day are dropped.
TIME_OF_DAY_MEAN, TIME_OF_DAY_STD = DAY / 2, 20_000.0
# Scenario 1: any amount above this is fraud.
S1_THRESHOLD = 220.0
# Scenario 2: terminals compromised per day, and for how many days from the draw.
S2_TERMINALS_PER_DAY, S2_DAYS = 2, 28
# Scenario 3: cards compromised per day, for how many days, and the spend multiplier applied to
# one third of their transactions in that window.
S3_CUSTOMERS_PER_DAY, S3_DAYS, S3_FACTOR = 3, 14, 5

COLUMNS = (
    "TRANSACTION_ID",
    "TX_DATETIME",
    "CUSTOMER_ID",
    "TERMINAL_ID",
    "TX_AMOUNT",
    "TX_TIME_SECONDS",
    "TX_TIME_DAYS",
    "TX_FRAUD",
    "TX_FRAUD_SCENARIO",
)

_CUSTOMERS, _TERMINALS, _SPENDING, _S2, _S3 = range(5)


def _rng(seed: int, stream: int, index: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, stream, index])


def customer_profiles(customers: int, seed: int = 0) -> pd.DataFrame:
    """One row per customer: position, amount mean/std and mean transactions per day."""
    rng = _rng(seed, _CUSTOMERS)
    xy = rng.uniform(0, GRID, size=(customers, 2))
    mean_amount = rng.uniform(5, 100, customers)
    return pd.DataFrame(
        {
            "CUSTOMER_ID": np.arange(customers),
            "x_customer_id": xy[:, 0],
            "y_customer_id": xy[:, 1],
            "mean_amount": mean_amount,
            "std_amount": mean_amount / 2,
            "mean_nb_tx_per_day": rng.uniform(0, 4, customers),
        }
    )


def terminal_profiles(terminals: int, seed: int = 0) -> pd.DataFrame:
    """One row per terminal: its position."""
    xy = _rng(seed, _TERMINALS).uniform(0, GRID, size=(terminals, 2))
    return pd.DataFrame(
        {"TERMINAL_ID": np.arange(terminals), "x_terminal_id": xy[:, 0], "y_terminal_id": xy[:, 1]}
    )


def _reachable(customers: pd.DataFrame, terminals: pd.DataFrame) -> list[np.ndarray]:
    """Per customer, the ids of the terminals within RADIUS (sorted)."""
    if terminals.empty:
        return [np.empty(0, dtype=np.int64)] * len(customers)
    tree = cKDTree(terminals[["x_terminal_id", "y_terminal_id"]].to_numpy())
    hits = tree.query_ball_point(
        customers[["x_customer_id", "y_customer_id"]].to_numpy(), r=RADIUS, return_sorted=True
    )
    return [np.asarray(h, dtype=np.int64) for h in hits]


def _spending(
    customer_id: int,
    mean_amount: float,
    std_amount: float,
    mean_per_day: float,
    terminals: np.ndarray,
    days: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One customer's genuine transactions: (seconds since start, terminal id, amount)."""
    rng = _rng(seed, _SPENDING, customer_id)
    counts = rng.poisson(mean_per_day, days)
    day = np.repeat(np.arange(days, dtype=np.int64), counts)
    # astype truncates toward zero, as int() does on the drawn float.
    tod = rng.normal(TIME_OF_DAY_MEAN, TIME_OF_DAY_STD, day.size).astype(np.int64)
    keep = (tod >= 0) & (tod < DAY)
    seconds = tod[keep] + DAY * day[keep]
    amount = rng.normal(mean_amount, std_amount, seconds.size)
    negative = amount < 0
    amount[negative] = rng.uniform(0, 2 * mean_amount, int(negative.sum()))
    terminal = terminals[rng.integers(0, terminals.size, seconds.size)]
    return seconds, terminal, np.round(amount, 2)


def _compromised_terminals(
    terminal: np.ndarray, day: np.ndarray, terminals: int, days: int, seed: int
) -> np.ndarray:
    """Mask of transactions made at a terminal within S2_DAYS of the day it was drawn."""
    compromised = np.zeros((terminals, days), dtype=bool)
    for d in range(days):
        drawn = _rng(seed, _S2, d).choice(
            terminals, min(S2_TERMINALS_PER_DAY, terminals), replace=False
        )
        compromised[drawn, d : d + S2_DAYS] = True
    return compromised[terminal, day]


def _compromised_cards(
    customer: np.ndarray, day: np.ndarray, customers: int, days: int, seed: int
) -> np.ndarray:
    """How many days' scenario 3 draws chose each transaction (mostly 0)."""
    chosen_times = np.zeros(customer.size, dtype=np.int64)
    if customer.size == 0:
        return chosen_times
    # Transactions grouped by customer, still in time order, so a card's window is a slice.
    by_customer = np.argsort(customer, kind="stable")
    bounds = np.searchsorted(customer[by_customer], np.arange(customers + 1))
    for d in range(days):
        rng = _rng(seed, _S3, d)
        cards = rng.choice(customers, min(S3_CUSTOMERS_PER_DAY, customers), replace=False)
        windows = []
        for card in cards:
            rows = by_customer[bounds[card] : bounds[card + 1]]
            lo, hi = np.searchsorted(day[rows], [d, d + S3_DAYS])
            windows.append(rows[lo:hi])
        candidates = np.sort(np.concatenate(windows))
        chosen = rng.choice(candidates, candidates.size // 3, replace=False)
        chosen_times[chosen] += 1
    return chosen_times


def generate(
    customers: int = 5000,
    terminals: int = 10000,
    days: int = 183,
    seed: int = 0,
    start_date: str = "2018-04-01",
    progress: bool = False,
) -> pd.DataFrame:
    """Transactions in the simulator file schema (see COLUMNS), sorted by time.

    The defaults give about 1.75 M transactions with about 0.85 % fraud.
    """
    customer_table = customer_profiles(customers, seed)
    reachable = _reachable(customer_table, terminal_profiles(terminals, seed))

    parts_seconds, parts_terminal, parts_amount, parts_customer = [], [], [], []
    rows = customer_table.itertuples(index=False)
    for profile, terminal_ids in tqdm(
        zip(rows, reachable, strict=True), total=customers, desc="customers", disable=not progress
    ):
        if terminal_ids.size == 0:  # nowhere to shop: this customer never transacts
            continue
        seconds, terminal, amount = _spending(
            profile.CUSTOMER_ID,
            profile.mean_amount,
            profile.std_amount,
            profile.mean_nb_tx_per_day,
            terminal_ids,
            days,
            seed,
        )
        parts_seconds.append(seconds)
        parts_terminal.append(terminal)
        parts_amount.append(amount)
        parts_customer.append(np.full(seconds.size, profile.CUSTOMER_ID, dtype=np.int64))

    def joined(parts: list[np.ndarray], dtype: type) -> np.ndarray:
        return np.concatenate(parts) if parts else np.empty(0, dtype=dtype)

    seconds = joined(parts_seconds, np.int64)
    # Stable sort: ties keep (customer id, draw order), so the numbering is deterministic.
    order = np.argsort(seconds, kind="stable")
    seconds = seconds[order]
    terminal = joined(parts_terminal, np.int64)[order]
    amount = joined(parts_amount, np.float64)[order]
    customer = joined(parts_customer, np.int64)[order]
    day = seconds // DAY

    # Scenarios in the Handbook's order; a later scenario overwrites an earlier one's label.
    scenario = np.zeros(seconds.size, dtype=np.int64)
    scenario[amount > S1_THRESHOLD] = 1
    scenario[_compromised_terminals(terminal, day, terminals, days, seed)] = 2
    s3_times = _compromised_cards(customer, day, customers, days, seed)
    scenario[s3_times > 0] = 3
    # A transaction drawn on several days is multiplied each time, as when applied day by day.
    amount = np.round(amount * float(S3_FACTOR) ** s3_times, 2)

    start = pd.Timestamp(start_date)
    return pd.DataFrame(
        {
            "TRANSACTION_ID": np.arange(seconds.size, dtype=np.int64),
            "TX_DATETIME": start + pd.to_timedelta(seconds, unit="s"),
            "CUSTOMER_ID": customer,
            "TERMINAL_ID": terminal,
            "TX_AMOUNT": amount,
            "TX_TIME_SECONDS": seconds,
            "TX_TIME_DAYS": day,
            "TX_FRAUD": (scenario > 0).astype(np.int64),
            "TX_FRAUD_SCENARIO": scenario,
        },
        columns=list(COLUMNS),
    )
