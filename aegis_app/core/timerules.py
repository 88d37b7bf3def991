"""The time rules every part of Aegis shares: time units, when a label becomes known, and
how much history the features need and keep.

Stream (workers, API), batch (training, evaluation), the replay and the harness all read
them from here, so that "a label is known `delay` days after its transaction" means the
same thing everywhere (docs/FEATURES.md).
"""

from __future__ import annotations

DAY = 86_400  # seconds
DEFAULT_LABEL_DELAY_DAYS = 7


def label_known_at(tx_ts: int, delay_days: int) -> int:
    """Epoch seconds at which the label of a transaction made at `tx_ts` becomes known."""
    return tx_ts + delay_days * DAY


def warmup_days(longest_window_days: int, delay_days: int) -> int:
    """Days of history before a target window that its features can look at: the longest
    window, ending `delay` days before the transaction (the delayed terminal features)."""
    return longest_window_days + delay_days


def state_horizon_days(longest_window_days: int, delay_days: int) -> int:
    """Days of event time a key's state keeps: the warm-up plus one more label delay, so a
    transaction that reaches its terminal up to `delay` late still finds its whole window.
    No state grows once this much event time has passed."""
    return longest_window_days + 2 * delay_days
