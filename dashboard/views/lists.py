"""Lists that rules read (`card in lists.watched_cards`): each list's size and version, and
an editor for its items, one per line. Setting a list is an admin's change: the API keeps
every version, writes the audit log and publishes it, so running rules read it at once."""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboard import rule_shaping as shaping
from dashboard.client import ApiError, ApiNotFound
from dashboard.views.common import flash, guarded, show_api_error

PICK_KEY = "list_pick"
_NEXT_PICK_KEY = "list_pick_next"
NEW_LIST = ""


def render(client: Any) -> None:
    st.subheader("Lists")
    summaries = guarded(client.lists, where="Lists")
    if summaries is None:
        return
    if summaries:
        st.dataframe(shaping.lists_frame(summaries), hide_index=True, width="stretch")
    else:
        st.caption("No lists yet. A rule reads one as `card in lists.<name>`.")
    names = [NEW_LIST, *sorted(s["name"] for s in summaries)]
    if _NEXT_PICK_KEY in st.session_state:
        st.session_state[PICK_KEY] = st.session_state.pop(_NEXT_PICK_KEY)
    if st.session_state.get(PICK_KEY) not in names:
        st.session_state[PICK_KEY] = NEW_LIST
    pick = st.selectbox(
        "Edit list",
        names,
        key=PICK_KEY,
        format_func=lambda name: name or "＋ New list",
    )
    current: list[str] = []
    if pick:
        try:
            current = list(client.get_list(pick).get("items", []))
        except ApiNotFound:
            current = []
        except ApiError as exc:
            show_api_error(exc, where=f"List {pick}")
            return
    with st.form(f"list_form_{pick or 'new'}", border=False):
        name = pick or st.text_input(
            "Name", placeholder="watched_cards", help="lower case letters, digits and _"
        )
        text = st.text_area(
            "Items, one per line",
            value="\n".join(current),
            height=160,
            help="card ids, merchants, categories...: compared as text",
        )
        note = st.text_input("Why this change (kept in the audit log)")
        saved = st.form_submit_button("Save list", icon=":material/save:")
    if not saved:
        return
    items = [line.strip() for line in text.splitlines() if line.strip()]
    try:
        found = client.put_list(name.strip(), items, note=note.strip() or None)
    except ApiError as exc:
        show_api_error(exc, where="Saving the list failed")
        return
    st.session_state[_NEXT_PICK_KEY] = found["name"]
    flash("success", f"List {found['name']} is version {found['version']} ({len(items)} items).")
    st.rerun()
