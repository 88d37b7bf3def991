"""In-process counters of one worker, shown by its web view (and later /metrics)."""

from __future__ import annotations

from collections import Counter, deque

# Model counters (agents/scoring.py): model_loads, model_refusals, model_announcements
# (model-update announcements heard), model_swaps and model_swaps_on_announcement /
# model_swaps_on_poll (what made the worker switch versions).
counts: Counter[str] = Counter()
# The latest alerts this worker raised, newest last, for the web view.
recent_alerts: deque[dict] = deque(maxlen=200)
# Latest transaction time the terminal stage has seen from each card partition: their
# spread is the event-time skew that terminal features tolerate up to the label delay.
source_watermarks: dict[int, int] = {}


def event_time_skew_seconds() -> int:
    if len(source_watermarks) < 2:
        return 0
    return max(source_watermarks.values()) - min(source_watermarks.values())
