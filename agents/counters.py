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
        # The newest transaction time the entity stage has seen, and the most any hop arrived
        # behind it: delayed entity features are exact while that lateness stays within the
        # label delay (a hop late by more may reach a state after a transaction that should
        # have counted it; docs/FEATURES.md, "State").
        self.newest_event_ts: int | None = None
        self.max_lateness_seconds = 0

    def saw_event_time(self, ts: int) -> int:
        """Note a hop's transaction time; how far (seconds) it arrived behind the newest."""
        if self.newest_event_ts is None or ts > self.newest_event_ts:
            self.newest_event_ts = ts
            return 0
        lateness = self.newest_event_ts - ts
        self.max_lateness_seconds = max(self.max_lateness_seconds, lateness)
        return lateness
