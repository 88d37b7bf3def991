"""Labelling several alerts at once: the bar under the queue when rows are ticked. One
request labels them all (POST /v1/alerts/labels); the API stores, audits and publishes each
label as it does for one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import streamlit as st

from dashboard.views import queue
from dashboard.views.common import flash, show_api_error

SHOWN_IDS = 10  # ticked ids named in the bar; more are counted


def render(client: Any, ticked: Sequence[str], analyst: str) -> None:
    if not ticked:
        return
    count = len(ticked)
    with st.container(border=True):
        st.markdown(f"**{count} alert{'s' if count != 1 else ''} ticked**")
        st.caption(ticked_caption(ticked))
        note = st.text_input(
            "Note for all (optional)", key="bulk_note", placeholder="e.g. same merchant breach"
        )
        c1, c2, c3 = st.columns([2, 2, 1])
        choice = None
        if c1.button(
            f"Mark {count} fraud",
            key="bulk_fraud",
            type="primary",
            icon=":material/flag:",
            width="stretch",
        ):
            choice = "fraud"
        if c2.button(
            f"Mark {count} legitimate",
            key="bulk_legit",
            icon=":material/verified_user:",
            width="stretch",
        ):
            choice = "legitimate"
        if c3.button("Clear ticks", key="bulk_clear", width="stretch"):
            queue.clear_ticks()
            st.rerun()
    if choice is None:
        return
    try:
        result = client.label_many(
            list(ticked), choice, note=note.strip() or None, analyst=analyst or None
        )
    except Exception as exc:  # noqa: BLE001 - shown as a friendly message
        show_api_error(exc, where="Labelling the ticked alerts failed")
        return
    done = len(result.get("labelled", []))
    missing = result.get("not_found", [])
    text = f"{done} alert{'s' if done != 1 else ''} labelled **{choice}**."
    if missing:
        text += f" Not found (nothing stored to label): {', '.join(map(str, missing))}."
    flash("success" if not missing else "warning", text)
    queue.clear_ticks()  # the labelled rows leave the queue; so do their ticks
    st.rerun()


def ticked_caption(ticked: Sequence[str]) -> str:
    """The ticked transaction ids, so the analyst sees what a bulk label will touch."""
    named = ", ".join(str(tx) for tx in ticked[:SHOWN_IDS])
    rest = len(ticked) - SHOWN_IDS
    return f"Transactions {named}" + (f" and {rest} more" if rest > 0 else "")
