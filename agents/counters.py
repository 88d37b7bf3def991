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
        # Latest transaction time the terminal stage has seen from each card partition:
        # their spread is the event-time skew that terminal features tolerate up to the
        # label delay.
        self.source_watermarks: dict[int, int] = {}

    def saw_event_time(self, source_partition: int | None, ts: int) -> None:
        if source_partition is not None and ts > self.source_watermarks.get(source_partition, 0):
            self.source_watermarks[source_partition] = ts

    def event_time_skew_seconds(self) -> int:
        if len(self.source_watermarks) < 2:
            return 0
        return max(self.source_watermarks.values()) - min(self.source_watermarks.values())
