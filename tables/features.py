"""Feature arithmetic: the one code path used by the stream (Faust tables) and by batch.

Two pieces of per-key state turn each transaction into its velocity features:

* `CardState` (key: card) holds the card's transactions of the last 30 days and gives,
  for the current transaction, counts and mean amounts over (t - w, t] for w in 1, 7, 30
  days, the current transaction included, plus Aegis's own card features.
* `TerminalState` (key: terminal) holds the terminal's transactions of the last
  30 + 2 x delay days and the fraud labels known for them, and gives the count and fraud
  share over (t - delay - w, t - delay], using only labels known at time t.

Both store one entry per transaction id, so handling a redelivered transaction again
gives the same features and does not count it twice. Entries are pruned on write, so a
key's state is bounded by the longest window (plus the label delay), whatever the history.

Card features depend on the order of a card's transactions within the same second, so
the card stage consumes the card-keyed input topic in order. Terminal features only
look at transactions at least `delay` days old, and terminal state keeps `delay` days
more than the longest window, so they tolerate the reordering that a repartition by
terminal introduces as long as it stays under `delay` days of event time.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from aegis_app.core.timerules import DAY, DEFAULT_LABEL_DELAY_DAYS, state_horizon_days

WINDOWS_DAYS = (1, 7, 30)
LONGEST_WINDOW_DAYS = max(WINDOWS_DAYS)
DEFAULT_DELAY_DAYS = DEFAULT_LABEL_DELAY_DAYS

# The Handbook's 15 reference features, in its order.
REFERENCE_FEATURES: tuple[str, ...] = (
    "TX_AMOUNT",
    "TX_DURING_WEEKEND",
    "TX_DURING_NIGHT",
    *(
        name
        for w in WINDOWS_DAYS
        for name in (f"CUSTOMER_ID_NB_TX_{w}DAY_WINDOW", f"CUSTOMER_ID_AVG_AMOUNT_{w}DAY_WINDOW")
    ),
    *(
        name
        for w in WINDOWS_DAYS
        for name in (f"TERMINAL_ID_NB_TX_{w}DAY_WINDOW", f"TERMINAL_ID_RISK_{w}DAY_WINDOW")
    ),
)

# Aegis's own features (see docs/FEATURES.md for why each helps).
EXTRA_FEATURES: tuple[str, ...] = (
    "TX_HOUR",
    "CUSTOMER_ID_SECONDS_SINCE_PREV_TX",
    "CUSTOMER_ID_AMOUNT_RATIO_30DAY",
    "CUSTOMER_ID_AMOUNT_ZSCORE_30DAY",
    "CUSTOMER_ID_NB_TERMINALS_1DAY_WINDOW",
    "CUSTOMER_ID_NEW_TERMINAL_30DAY",
)

ALL_FEATURES: tuple[str, ...] = REFERENCE_FEATURES + EXTRA_FEATURES

# Reported when a card has no earlier transaction in its 30-day history.
NO_PREVIOUS_TX_SECONDS = 30 * DAY


def time_features(ts: int) -> dict[str, float]:
    """Calendar features of a UTC epoch-seconds timestamp (weekend: Sat/Sun, night: hour <= 6)."""
    moment = datetime.fromtimestamp(ts, tz=UTC)
    return {
        "TX_DURING_WEEKEND": float(moment.weekday() >= 5),
        "TX_DURING_NIGHT": float(moment.hour <= 6),
        "TX_HOUR": float(moment.hour),
    }


class CardState:
    """A card's transactions of the last 30 days, in arrival order."""

    __slots__ = ("ts", "ids", "amounts", "terminals")

    HORIZON = LONGEST_WINDOW_DAYS * DAY

    def __init__(
        self,
        ts: list[int] | None = None,
        ids: list[int] | None = None,
        amounts: list[float] | None = None,
        terminals: list[int] | None = None,
    ) -> None:
        self.ts = ts or []
        self.ids = ids or []
        self.amounts = amounts or []
        self.terminals = terminals or []

    @classmethod
    def from_value(cls, value: list | None) -> CardState:
        return cls(*value) if value else cls()

    def to_value(self) -> list:
        return [self.ts, self.ids, self.amounts, self.terminals]

    def __len__(self) -> int:
        return len(self.ids)

    def observe(self, tx_id: int, ts: int, amount: float, terminal_id: int) -> dict[str, float]:
        """Record the transaction (once) and return its card features."""
        try:
            position = self.ids.index(tx_id)  # a redelivery: answer as the first time
        except ValueError:
            self._prune(ts - self.HORIZON)
            self.ts.append(ts)
            self.ids.append(tx_id)
            self.amounts.append(amount)
            self.terminals.append(terminal_id)
            position = len(self.ids) - 1
        return self._features_at(position)

    def _prune(self, cutoff: int) -> None:
        # Arrival order is time order for a card, so old entries sit at the front.
        drop = 0
        while drop < len(self.ts) and self.ts[drop] <= cutoff:
            drop += 1
        if drop:
            del self.ts[:drop], self.ids[:drop], self.amounts[:drop], self.terminals[:drop]

    def _features_at(self, position: int) -> dict[str, float]:
        t = self.ts[position]
        amount = self.amounts[position]
        terminal = self.terminals[position]
        bounds = [t - w * DAY for w in WINDOWS_DAYS]
        counts = [0, 0, 0]
        sums = [0.0, 0.0, 0.0]
        # History before this transaction (30 days), for the card's own norm.
        prev_n, prev_sum, prev_sq = 0, 0.0, 0.0
        prev_ts = None
        terminals_1d = {terminal}
        seen_terminal_before = False
        # Walk back from the current entry: arrival order defines "before" for equal seconds.
        for j in range(position, -1, -1):
            tj = self.ts[j]
            if tj > t or tj <= bounds[2]:
                continue
            a = self.amounts[j]
            for k in range(3):
                if tj > bounds[k]:
                    counts[k] += 1
                    sums[k] += a
            if j == position:
                continue
            prev_n += 1
            prev_sum += a
            prev_sq += a * a
            if prev_ts is None or tj > prev_ts:
                prev_ts = tj
            if self.terminals[j] == terminal:
                seen_terminal_before = True
            if tj > bounds[0]:
                terminals_1d.add(self.terminals[j])
        features: dict[str, float] = {}
        for k, w in enumerate(WINDOWS_DAYS):
            features[f"CUSTOMER_ID_NB_TX_{w}DAY_WINDOW"] = float(counts[k])
            features[f"CUSTOMER_ID_AVG_AMOUNT_{w}DAY_WINDOW"] = sums[k] / counts[k]
        if prev_n:
            mean = prev_sum / prev_n
            variance = max(prev_sq / prev_n - mean * mean, 0.0)
            ratio = amount / mean if mean > 0 else 1.0
            # +1 keeps the score finite for cards that always spend the same amount.
            zscore = (amount - mean) / (math.sqrt(variance) + 1.0)
        else:
            ratio, zscore = 1.0, 0.0
        features["CUSTOMER_ID_SECONDS_SINCE_PREV_TX"] = float(
            t - prev_ts if prev_ts is not None else NO_PREVIOUS_TX_SECONDS
        )
        features["CUSTOMER_ID_AMOUNT_RATIO_30DAY"] = ratio
        features["CUSTOMER_ID_AMOUNT_ZSCORE_30DAY"] = zscore
        features["CUSTOMER_ID_NB_TERMINALS_1DAY_WINDOW"] = float(len(terminals_1d))
        features["CUSTOMER_ID_NEW_TERMINAL_30DAY"] = float(prev_n > 0 and not seen_terminal_before)
        return features


class TerminalState:
    """A terminal's transactions of the last 30 + delay days and their known fraud labels."""

    __slots__ = ("ts", "ids", "frauds")

    def __init__(
        self,
        ts: list[int] | None = None,
        ids: list[int] | None = None,
        frauds: dict[str, list[int]] | None = None,
    ) -> None:
        self.ts = ts or []
        self.ids = ids or []
        # transaction id (str: JSON keys) -> [transaction time, time the label became known]
        self.frauds = frauds or {}

    @classmethod
    def from_value(cls, value: list | None) -> TerminalState:
        return cls(*value) if value else cls()

    def to_value(self) -> list:
        return [self.ts, self.ids, self.frauds]

    def __len__(self) -> int:
        return len(self.ids)

    def observe(
        self, tx_id: int, ts: int, delay_days: int = DEFAULT_DELAY_DAYS
    ) -> dict[str, float]:
        """Record the transaction (once) and return its terminal features at time ts."""
        if tx_id not in self.ids:
            # Keep one label delay beyond the longest window: a transaction that arrives
            # up to `delay` late (repartitioning skew) still finds its whole window.
            self._prune(ts - state_horizon_days(LONGEST_WINDOW_DAYS, delay_days) * DAY)
            self.ts.append(ts)
            self.ids.append(tx_id)
        return self.features(ts, delay_days)

    def add_label(self, tx_id: int, tx_ts: int, known_at: int, fraud: bool) -> None:
        """Take a label in; a later label for the same transaction replaces the earlier one."""
        if fraud:
            self.frauds[str(tx_id)] = [tx_ts, known_at]
        else:
            self.frauds.pop(str(tx_id), None)

    def features(self, t: int, delay_days: int = DEFAULT_DELAY_DAYS) -> dict[str, float]:
        end = t - delay_days * DAY
        bounds = [end - w * DAY for w in WINDOWS_DAYS]
        counts = [0, 0, 0]
        for tj in self.ts:
            if bounds[2] < tj <= end:
                for k in range(3):
                    if tj > bounds[k]:
                        counts[k] += 1
        frauds = [0, 0, 0]
        for tx_ts, known_at in self.frauds.values():
            if known_at <= t and bounds[2] < tx_ts <= end:
                for k in range(3):
                    if tx_ts > bounds[k]:
                        frauds[k] += 1
        features: dict[str, float] = {}
        for k, w in enumerate(WINDOWS_DAYS):
            features[f"TERMINAL_ID_NB_TX_{w}DAY_WINDOW"] = float(counts[k])
            risk = frauds[k] / counts[k] if counts[k] else 0.0
            features[f"TERMINAL_ID_RISK_{w}DAY_WINDOW"] = risk
        return features

    def _prune(self, cutoff: int) -> None:
        if self.ts and min(self.ts) <= cutoff:
            keep = [i for i, tj in enumerate(self.ts) if tj > cutoff]
            self.ts = [self.ts[i] for i in keep]
            self.ids = [self.ids[i] for i in keep]
        stale = [key for key, (tx_ts, _) in self.frauds.items() if tx_ts <= cutoff]
        for key in stale:
            del self.frauds[key]


def assemble(
    amount: float, ts: int, card: dict[str, float], terminal: dict[str, float]
) -> dict[str, float]:
    """The full feature dict of one transaction, from its card and terminal parts."""
    features = {"TX_AMOUNT": float(amount), **time_features(ts), **card, **terminal}
    return {name: features[name] for name in ALL_FEATURES}


def vector(features: dict[str, float], names: tuple[str, ...] | list[str]) -> list[float]:
    """Features in a model's order (the order its manifest records)."""
    return [features[name] for name in names]
