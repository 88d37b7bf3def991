"""Charts: throughput and alerts per minute, score distribution, precision of labelled alerts."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import altair as alt
import streamlit as st

from dashboard import shaping
from dashboard.client import ApiError
from dashboard.views.common import log

HISTORY_KEY = "_metrics_history"
HISTORY_MAX = 180  # samples kept for the throughput chart (30 minutes at 10 s)
SAMPLE_LIMITS = (500, 200, 100)  # the largest page the API accepts is used

ACTION_COLORS = alt.Scale(domain=["block", "review"], range=["#d62728", "#ff9f1c"])
SERIES_COLORS = alt.Scale(domain=["transactions", "alerts"], range=["#1f77b4", "#d62728"])
PRECISION_COLORS = alt.Scale(
    domain=["Precision", "Cumulative precision"], range=["#9ecae1", "#08519c"]
)
OUTCOME_COLORS = alt.Scale(
    domain=["fraud", "legitimate", "unlabelled"], range=["#d62728", "#2ca02c", "#9aa0a6"]
)


def fetch_sample(client: Any, **params: Any) -> list[Mapping[str, Any]]:
    """Up to a few hundred alerts for the charts (the API may cap the page size)."""
    last: ApiError | None = None
    for limit in SAMPLE_LIMITS:
        try:
            return client.alerts(limit=limit, **params)["items"]
        except ApiError as exc:
            if exc.status not in (400, 422):
                raise
            last = exc
    raise last  # type: ignore[misc]


def record_metrics(client: Any) -> dict[str, float] | None:
    """Scrape /metrics once and append the counts to this session's history."""
    try:
        counts = shaping.throughput_counts(shaping.parse_prometheus(client.metrics_text()))
    except Exception as exc:  # noqa: BLE001 - the chart says metrics are unavailable
        log.warning("metrics scrape failed: %s", exc)
        return None
    history = st.session_state.setdefault(HISTORY_KEY, [])
    history.append((time.time(), counts))
    del history[:-HISTORY_MAX]
    return counts


def open_count(page: Mapping[str, Any] | None) -> str | None:
    """'42', or '100+' when the API pages without counting."""
    if not page:
        return None
    if page.get("total") is not None:
        return f"{page['total']:,}"
    return f"{len(page['items']):,}" + ("+" if page.get("more") else "")


def kpis(
    target: Any,
    counts: Mapping[str, float] | None,
    open_total: str | None,
    labelled: Mapping[str, Any],
    model_version: str | None,
) -> None:
    cols = target.columns([1, 1, 1, 1.2, 1.6])
    cols[0].metric("Transactions decided", f"{counts['transactions']:,.0f}" if counts else "—")
    cols[1].metric("Alerts raised", f"{counts['alerts']:,.0f}" if counts else "—")
    cols[2].metric("Open alerts", open_total or "—")
    precision = labelled.get("precision")
    cols[3].metric(
        "Precision of labelled alerts",
        f"{precision:.1%}" if precision is not None else "—",
        help=f"{labelled.get('fraud', 0)} fraud out of {labelled.get('labelled', 0)} labelled"
        " (most recent labelled alerts)",
    )
    cols[4].metric("Active model", model_version or "none")


def throughput_chart() -> None:
    st.markdown("**Transactions and alerts per minute**")
    rates = shaping.rates_per_minute(st.session_state.get(HISTORY_KEY, []))
    if rates.empty:
        st.caption("Sampling /metrics: the rate appears after the next refresh.")
        return
    chart = (
        alt.Chart(rates)
        .mark_line(point=True)
        .encode(
            x=alt.X("Time:T", title=None, axis=alt.Axis(format="%H:%M:%S")),
            y=alt.Y("Per minute:Q"),
            color=alt.Color(
                "Series:N", scale=SERIES_COLORS, legend=alt.Legend(orient="top", title=None)
            ),
            tooltip=["Series", alt.Tooltip("Per minute:Q", format=",.0f"), "Time:T"],
        )
        .properties(height=240)
    )
    st.altair_chart(chart, width="stretch")


def alerts_chart(items: list[Mapping[str, Any]]) -> None:
    st.markdown("**Alerts per minute** (by decision time)")
    frame = shaping.alerts_per_minute(items)
    if frame.empty:
        st.caption("No alerts in this window yet.")
        return
    chart = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("Minute:T", title=None, axis=alt.Axis(format="%H:%M")),
            y=alt.Y("Alerts:Q", stack=True),
            color=alt.Color(
                "Action:N", scale=ACTION_COLORS, legend=alt.Legend(orient="top", title=None)
            ),
            tooltip=["Minute:T", "Action", "Alerts"],
        )
        .properties(height=240)
    )
    st.altair_chart(chart, width="stretch")


def score_chart(items: list[Mapping[str, Any]]) -> None:
    st.markdown("**Score distribution of alerts**")
    frame = shaping.score_frame(items)
    if frame.empty:
        st.caption("No scored alerts yet.")
        return
    low = float(frame["Score"].min())
    chart = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X(
                "Score:Q",
                bin=alt.Bin(maxbins=30, extent=[min(low, 0.999), 1.0]),
                title="Ensemble score",
            ),
            y=alt.Y("count():Q", title="Alerts", stack=True),
            color=alt.Color(
                "Outcome:N", scale=OUTCOME_COLORS, legend=alt.Legend(orient="top", title=None)
            ),
            tooltip=["Outcome", "count():Q"],
        )
        .properties(height=240)
    )
    st.altair_chart(chart, width="stretch")


def precision_chart(labelled_items: list[Mapping[str, Any]]) -> None:
    st.markdown("**Precision of labelled alerts over time**")
    frame = shaping.precision_over_time(labelled_items)
    if frame.empty:
        st.caption("No labelled alerts yet: label some in the queue.")
        return
    long = frame.melt(
        id_vars=["Period", "Labelled"],
        value_vars=["Precision", "Cumulative precision"],
        var_name="Series",
        value_name="Value",
    )
    chart = (
        alt.Chart(long)
        .mark_line(point=True)
        .encode(
            x=alt.X("Period:T", title=None),
            y=alt.Y("Value:Q", title="Precision", scale=alt.Scale(domain=[0, 1])),
            color=alt.Color(
                "Series:N", scale=PRECISION_COLORS, legend=alt.Legend(orient="top", title=None)
            ),
            tooltip=["Period:T", "Series", alt.Tooltip("Value:Q", format=".1%"), "Labelled"],
        )
        .properties(height=240)
    )
    st.altair_chart(chart, width="stretch")
