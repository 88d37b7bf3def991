"""The live alert queue: a table of alerts and the picker that opens one in the detail panel."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import streamlit as st

from dashboard import shaping

PICK_KEY = "selected_alert"
SELECTED_KEY = "queue_ticked"  # the transaction ids ticked in the table, for bulk labelling
TABLE_GENERATION_KEY = "queue_table_generation"
HELD_KEY = "queue_held"  # the queue as last drawn: what a tick's row number refers to


@dataclass(frozen=True)
class QueuePage:
    """One drawing of the queue: its rows and counts, and the filters (`view`) it is for."""

    view: object
    items: Sequence[Mapping[str, Any]]
    total: int | None
    more: bool


def render(fetched: QueuePage, names: shaping.RecordNames) -> Mapping[str, Any] | None:
    """Draw the queue, its columns titled with the config's `names`; returns the alert row
    the analyst has open (or None). While rows are ticked the queue holds still (the
    fetched page is not drawn): a tick is a row number, and new alerts arriving on top
    would move it onto another alert."""
    ticked_rows = _ticked_rows()
    page = shown_page(fetched, st.session_state.get(HELD_KEY), ticked_rows)
    held = page is not fetched
    if ticked_rows and not held:
        clear_ticks()  # other filters: the ticked rows are not among what was asked for
    st.session_state[HELD_KEY] = page
    items = page.items
    st.subheader("Alert queue")
    hint = (
        " · held while rows are ticked (new alerts show once they are cleared)"
        if held
        else " · tick rows to open them and label several at once"
    )
    st.caption(count_caption(len(items), page.total, page.more) + hint)
    if not items:
        st.session_state[SELECTED_KEY] = []  # nothing shown, nothing ticked
        st.info("No alerts match these filters. New alerts appear here as they are decided.")
        return None

    frame = shaping.queue_frame(items, names)
    tx, amount, card = (names.title(role) for role in ("transaction_id", "amount", "card"))
    styled = frame.style.map(_action_style, subset=["Action"]).map(_label_style, subset=["Label"])
    event = st.dataframe(
        styled,
        hide_index=True,
        width="stretch",
        height=min(38 + 35 * len(frame), 420),
        on_select="rerun",
        selection_mode="multi-row",
        # A new key after a bulk label starts the table with no row ticked.
        key=_table_key(),
        column_config={
            # Config names may be long: these columns size to their title.
            tx: st.column_config.TextColumn(tx, help="the transaction id"),
            "Decided": st.column_config.DatetimeColumn(
                "Decided", format="HH:mm:ss", width="small", help="decision time, UTC"
            ),
            "Action": st.column_config.TextColumn("Action", width="small"),
            "Score": st.column_config.NumberColumn("Score", format="%.4f", width="small"),
            amount: st.column_config.NumberColumn(amount, format="%.2f", help="the amount"),
            card: st.column_config.TextColumn(card, help="the card"),
            "Label": st.column_config.TextColumn("Label", width="small"),
            "Top reason": st.column_config.TextColumn("Top reason", width="large"),
        },
    )
    by_id = {item.get("transaction_id"): item for item in items}
    ids = list(by_id)

    # Ticked rows are labelled together (bulk bar below); the row ticked last opens in the
    # detail panel (only when the tick is new: the picker may have moved on since).
    rows = list(getattr(getattr(event, "selection", None), "rows", []) or [])
    ticked = [ids[r] for r in rows if r < len(ids)]
    before = st.session_state.get(SELECTED_KEY) or []
    added = [tx for tx in ticked if tx not in before]
    if added:
        st.session_state[PICK_KEY] = added[-1]
    st.session_state[SELECTED_KEY] = ticked

    if st.session_state.get(PICK_KEY) not in by_id:
        st.session_state[PICK_KEY] = ids[0]
    chosen = st.selectbox(
        "Open alert",
        ids,
        key=PICK_KEY,
        format_func=lambda key: shaping.alert_option(
            by_id.get(key, {"transaction_id": key}), names
        ),
    )
    return by_id.get(chosen)


_ACTION_CSS = {
    "block": "background-color: #fde0df; color: #a50e0e; font-weight: 600",
    "review": "background-color: #fff0d4; color: #8a4b00; font-weight: 600",
}
_LABEL_CSS = {"fraud": "color: #a50e0e; font-weight: 600", "legitimate": "color: #1e7a34"}


def _action_style(value: str) -> str:
    return _ACTION_CSS.get(value, "")


def _label_style(value: str) -> str:
    return _LABEL_CSS.get(value, "color: #6b7280")


def shown_page(fetched: QueuePage, held: QueuePage | None, ticked_rows: Sequence[int]) -> QueuePage:
    """The page to draw: the one last drawn while any of its rows is ticked (and the
    filters are the same), else the fresh one."""
    if ticked_rows and held is not None and held.view == fetched.view:
        return held
    return fetched


def _table_key() -> str:
    """The table's widget key: a new one after the ticks are cleared starts it unticked."""
    return f"queue_table_{st.session_state.get(TABLE_GENERATION_KEY, 0)}"


def _ticked_rows() -> list[int]:
    """The row numbers ticked in the table as last drawn (its widget state, before this
    run draws it again)."""
    state = st.session_state.get(_table_key())
    selection = state.get("selection") if state else None
    return list(selection.get("rows", []) or []) if selection else []


def clear_ticks() -> None:
    """Untick every row: the next run draws a new table (its key changes)."""
    st.session_state[TABLE_GENERATION_KEY] = st.session_state.get(TABLE_GENERATION_KEY, 0) + 1
    st.session_state[SELECTED_KEY] = []


def count_caption(shown: int, total: int | None, more: bool) -> str:
    if total is not None:
        text = f"{total:,} alert{'s' if total != 1 else ''} match the filters"
        return text + (f" · newest {shown:,} shown" if shown < total else "")
    if more:
        return f"newest {shown:,} matching alerts shown (more in the store: narrow the filters)"
    return f"{shown:,} alert{'s' if shown != 1 else ''} match the filters"
