"""Drift panel: how far live data has moved from the active model's training data.

Shows, per event-time window from GET /v1/drift, the population stability index (PSI) of
the ensemble score and of the features that moved most, a red banner when the newest window
alerts, and a plain explanation when the API has nothing to compare with.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from dashboard.client import ApiNotFound, DriftUnavailable
from dashboard.views import common

WINDOW_HOURS = 24
WINDOWS = 7
TOP_FEATURES = 3  # feature lines on the chart, besides the score
SCORE_SERIES = "Score"
# The API recomputes every window per call: ask at most this often per session.
CACHE_KEY = "_drift_body"
CACHE_S = 60.0


def history_frame(body: Mapping[str, Any], top: int = TOP_FEATURES) -> pd.DataFrame:
    """Long frame (Window end, Series, PSI): the score and the `top` features with the
    largest PSI in any window."""
    windows = [w for w in body.get("windows") or [] if w.get("n")]
    peak: dict[str, float] = {}
    for window in windows:
        for name, value in (window.get("feature_psi") or {}).items():
            peak[name] = max(peak.get(name, 0.0), float(value))
    features = sorted(peak, key=peak.__getitem__, reverse=True)[:top]
    records = []
    for window in windows:
        end = pd.to_datetime(window["end"])
        if window.get("score_psi") is not None:
            records.append((end, SCORE_SERIES, float(window["score_psi"])))
        for name in features:
            value = (window.get("feature_psi") or {}).get(name)
            if value is not None:
                records.append((end, name, float(value)))
    return pd.DataFrame(records, columns=["Window end", "Series", "PSI"])


def latest_table(window: Mapping[str, Any]) -> pd.DataFrame:
    """Every feature's PSI in a window, largest first."""
    items = sorted((window.get("feature_psi") or {}).items(), key=lambda kv: kv[1], reverse=True)
    return pd.DataFrame(items, columns=["Feature", "PSI"])


def _fetch(client: Any) -> Mapping[str, Any]:
    cached = st.session_state.get(CACHE_KEY)
    if cached and cached[0] is client and time.monotonic() - cached[1] < CACHE_S:
        return cached[2]
    body = client.drift(hours=WINDOW_HOURS, windows=WINDOWS)
    st.session_state[CACHE_KEY] = (client, time.monotonic(), body)
    return body


def _psi(value: Any) -> str:
    return f"{float(value):.3f}" if value is not None else "—"


def _banner(body: Mapping[str, Any], latest: Mapping[str, Any]) -> None:
    threshold = float(body.get("threshold") or 0.25)
    shifted = []
    if latest.get("score_psi") is not None and latest["score_psi"] >= threshold:
        shifted.append(f"the score (PSI {_psi(latest['score_psi'])})")
    shifted += [
        f"{item['feature']} (PSI {_psi(item['psi'])})"
        for item in latest.get("top_features") or []
        if item["psi"] >= threshold
    ]
    st.error(
        f"**Drift alert.** In the window ending {latest['end']}, "
        f"{', '.join(shifted) or 'the data'} moved past PSI {threshold:g} from the training "
        f"data of model {body.get('model_version')}. Scores may be less reliable: check the "
        "input feeds, and retrain if the change is real.",
        icon=":material/warning:",
    )


def render(client: Any) -> None:
    st.subheader("Drift")
    if not hasattr(client, "drift"):
        st.caption("This API client does not report drift.")
        return
    try:
        body = _fetch(client)
    except DriftUnavailable as exc:
        st.info(f"Drift monitoring is not available: {exc.message}", icon=":material/info:")
        return
    except ApiNotFound:
        st.caption("This API has no drift endpoint yet (upgrade `aegis api`).")
        return
    except Exception as exc:  # noqa: BLE001 - a friendly message, retried on the next tick
        common.show_api_error(exc, "Drift")
        return
    windows = body.get("windows") or []
    if not windows:
        st.caption("No decisions stored yet: drift appears once transactions are scored.")
        return
    latest = windows[-1]
    if latest.get("alert"):
        _banner(body, latest)
    elif not latest.get("enough_data", True):
        st.caption(
            f"The newest window holds {latest.get('n', 0)} decisions: too few to raise a "
            "drift alert."
        )
    hours = body.get("hours", WINDOW_HOURS)
    st.markdown(
        f"Population stability index against the training data of model "
        f"**{body.get('model_version')}**, per {hours} h of event time up to "
        f"{body.get('latest_tx_datetime')}. Under {body.get('moderate', 0.1):g}: stable; "
        f"from {body.get('threshold', 0.25):g}: a significant shift."
    )
    cols = st.columns(3)
    cols[0].metric("Score PSI (newest window)", _psi(latest.get("score_psi")))
    cols[1].metric(
        "Largest feature PSI",
        _psi(latest.get("max_feature_psi")),
        help=f"{latest.get('max_feature') or '—'} in the newest window",
    )
    cols[2].metric("Decisions in the newest window", f"{latest.get('n', 0):,}")
    frame = history_frame(body)
    if not frame.empty:
        lines = (
            alt.Chart(frame)
            .mark_line(point=True)
            .encode(
                x=alt.X("Window end:T", title=None),
                y=alt.Y("PSI:Q"),
                color=alt.Color("Series:N", legend=alt.Legend(orient="top", title=None)),
                tooltip=["Series", alt.Tooltip("PSI:Q", format=".3f"), "Window end:T"],
            )
        )
        rules = (
            alt.Chart(
                pd.DataFrame(
                    {
                        "PSI": [body.get("moderate", 0.1), body.get("threshold", 0.25)],
                        "Level": ["moderate", "alert"],
                    }
                )
            )
            .mark_rule(strokeDash=[4, 4])
            .encode(
                y="PSI:Q",
                color=alt.Color(
                    "Level:N",
                    scale=alt.Scale(domain=["moderate", "alert"], range=["#ff9f1c", "#d62728"]),
                    legend=None,
                ),
            )
        )
        st.altair_chart(
            alt.layer(lines, rules).resolve_scale(color="independent").properties(height=260),
            width="stretch",
        )
    with st.expander("Every feature in the newest window"):
        st.dataframe(
            latest_table(latest),
            hide_index=True,
            width="stretch",
            column_config={"PSI": st.column_config.NumberColumn(format="%.3f")},
        )
