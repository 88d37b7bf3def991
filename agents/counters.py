"""In-process counters of one worker, shown by its web view (and later /metrics)."""

from __future__ import annotations

from collections import Counter, deque


class WorkerCounters:
    """What one worker has seen and done since it started.

    `counts` holds the event counters; the model counters (agents/scoring.py) are
    model_loads, model_refusals, model_announcements (model-update announcements heard),
    model_swaps and model_swaps_on_announcement / model_swaps_on_poll (what made the
    worker switch versions).
    """

    def __init__(self, recent_alerts: int = 200) -> None:
        self.counts: Counter[str] = Counter()
        # The latest alerts this worker raised, newest last, for the web view.
        self.recent_alerts: deque[dict] = deque(maxlen=recent_alerts)
        # The most a transaction reached an entity state behind that state's newest event:
        # delayed entity features are exact while it stays under the label delay (a later
        # one may have been missed by a transaction that should have counted it;
        # docs/FEATURES.md, "State").
        self.max_lateness_seconds = 0

    def saw_lateness(self, seconds: int) -> None:
        self.max_lateness_seconds = max(self.max_lateness_seconds, seconds)
