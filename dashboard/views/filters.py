"""The sidebar: queue filters, refresh switch, analyst name, connection details."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import streamlit as st

from dashboard import config, shaping

STATUS_CHOICES = ("Open", "Labelled", "All")
PAGE_SIZES = (25, 50, 100, 200)


@dataclass(frozen=True)
class Filters:
    actions: tuple[str, ...]
    status: str
    score_range: tuple[float, float]
    window: str
    limit: int
    auto_refresh: bool
    analyst: str

    def params(self) -> dict[str, Any]:
        return shaping.query_params(self.actions, self.status, self.score_range, self.window)


def render(api_url: str | None) -> Filters:
    sb = st.sidebar
    sb.header("Alert queue")
    actions = sb.multiselect(
        "Action", list(shaping.ACTIONS), default=list(shaping.ACTIONS), key="f_actions"
    )
    status = sb.segmented_control(
        "Status", STATUS_CHOICES, default="Open", key="f_status", selection_mode="single"
    )
    score_range = sb.slider(
        "Score",
        min_value=0.0,
        max_value=1.0,
        value=(0.0, 1.0),
        step=0.001,
        format="%.3f",
        key="f_score",
    )
    window = sb.selectbox("Decided", list(shaping.TIME_WINDOWS), index=4, key="f_window")
    limit = sb.selectbox("Rows", PAGE_SIZES, index=1, key="f_limit")
    sb.divider()
    auto = sb.toggle(f"Auto-refresh every {config.QUEUE_REFRESH_S:.0f} s", value=True, key="f_auto")
    analyst = sb.text_input("Your name (saved with labels)", key="f_analyst")
    sb.divider()
    if api_url:
        sb.caption(f"API: `{api_url}`")
    return Filters(
        actions=tuple(actions),
        status=status or "All",
        score_range=(float(score_range[0]), float(score_range[1])),
        window=window,
        limit=int(limit),
        auto_refresh=bool(auto),
        analyst=analyst.strip(),
    )
