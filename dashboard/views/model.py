"""The active model version: its evaluation metrics, thresholds and precision-recall curve."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import altair as alt
import streamlit as st

from dashboard import shaping


def render(models_body: Mapping[str, Any] | None, model_dir: Path | None) -> None:
    st.subheader("Active model")
    active = shaping.active_model(models_body)
    if active is None:
        st.warning("No model version is active: run `aegis train` (the worker scores nothing).")
        return
    version = str(active.get("version"))
    count = len((models_body or {}).get("versions") or [])
    window = active.get("training_window") or {}
    info = [f"**{version}**"]
    if active.get("created_at"):
        info.append(f"created {active['created_at']}")
    if window:
        text = f"trained on {window.get('start', '?')} → {window.get('end_exclusive', '?')}"
        extra = [
            f"{window[key]:,} {noun}"
            for key, noun in (("rows", "transactions"), ("frauds", "frauds"))
            if isinstance(window.get(key), int)
        ]
        info.append(text + (f" ({', '.join(extra)})" if extra else ""))
    info.append(f"{count} version{'s' if count != 1 else ''} in the registry")
    st.markdown(" · ".join(info))

    left, right = st.columns([2, 3], gap="large")
    with left:
        metrics = shaping.metrics_frame(active.get("holdout_metrics"))
        thresholds = active.get("thresholds") or {}
        st.markdown("**Evaluation on the hold-out week**")
        if metrics.empty:
            st.caption("This version has no hold-out metrics (run `aegis evaluate`).")
        else:
            st.dataframe(
                metrics,
                hide_index=True,
                width="stretch",
                column_config={"Value": st.column_config.NumberColumn(format="%.4f")},
            )
        if thresholds:
            st.markdown("**Thresholds** (ensemble score)")
            cols = st.columns(len(thresholds))
            for col, (name, value) in zip(cols, thresholds.items()):
                col.metric(name.capitalize(), f"{float(value):.4f}")
        if active.get("threshold_selection"):
            with st.expander("How the thresholds were chosen"):
                st.json(active["threshold_selection"], expanded=2)
    with right:
        st.markdown("**Precision–recall curve**")
        png = shaping.find_pr_curve_png(model_dir, version)
        curve = shaping.pr_curve_frame(active.get("holdout_metrics"))
        if png is not None:
            st.image(str(png), caption=f"{png.name} (written by `aegis thresholds`)")
        elif curve is not None:
            chart = (
                alt.Chart(curve)
                .mark_line()
                .encode(
                    x=alt.X("Recall:Q", scale=alt.Scale(domain=[0, 1])),
                    y=alt.Y("Precision:Q", scale=alt.Scale(domain=[0, 1])),
                    tooltip=[
                        alt.Tooltip("Recall:Q", format=".3f"),
                        alt.Tooltip("Precision:Q", format=".3f"),
                    ],
                )
                .properties(height=260)
            )
            st.altair_chart(chart, width="stretch")
        else:
            st.caption(
                "No PR curve for this version yet: `aegis thresholds` draws one into the "
                "model directory."
            )
