"""The sidebar: queue filters, refresh switch, analyst name, connection details."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import streamlit as st

from dashboard import config, shaping

STATUS_CHOICES = ("Open", "Labelled", "All")
RULE_MODES = ("Active or shadow", "Active", "Shadow")
ANY_RULE = 0
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
    search: str = ""
    rule_id: int | None = None
    rule_mode: str = RULE_MODES[0]

    def params(self) -> dict[str, Any]:
        return shaping.query_params(
            self.actions,
            self.status,
            self.score_range,
            self.window,
            search=self.search,
            rule_id=self.rule_id,
            shadow={"Active": False, "Shadow": True}.get(self.rule_mode),
        )


def render(api_url: str | None, rules: Sequence[Mapping[str, Any]] = ()) -> Filters:
    """The sidebar; `rules` (GET /v1/rules items) are offered in the rule filter."""
    sb = st.sidebar
    sb.header("Alert queue")
    search = sb.text_input(
        "Search",
        key="f_search",
        placeholder="card, merchant or transaction id",
        help="exact match on the transaction id, the card or the merchant",
    )
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
    by_id = {int(r["rule_id"]): r for r in rules}
    rule_id = sb.selectbox(
        "Rule that fired",
        [ANY_RULE, *sorted(by_id)],
        format_func=lambda key: (
            "Any (no rule filter)" if key == ANY_RULE else _rule_name(by_id[key])
        ),
        key="f_rule",
    )
    rule_mode = RULE_MODES[0]
    if rule_id != ANY_RULE:
        rule_mode = (
            sb.segmented_control("Matched as", RULE_MODES, default=RULE_MODES[0], key="f_rule_mode")
            or RULE_MODES[0]
        )
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
        search=search.strip(),
        rule_id=None if rule_id == ANY_RULE else int(rule_id),
        rule_mode=rule_mode,
    )


def _rule_name(rule: Mapping[str, Any]) -> str:
    reason = str(rule.get("reason", ""))
    reason = reason if len(reason) <= 40 else reason[:37] + "..."
    return f"Rule {rule['rule_id']} ({rule.get('state', '')}): {reason}"
