"""One alert in full: amount, card, merchant (titled with the config's names), scores per
model, reasons, the card's history and features, the record's fields, and the buttons that
label it through the API (which publishes the label with the decision's card and entity
keys)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import streamlit as st

from dashboard import rule_shaping, shaping
from dashboard.client import ApiNotFound
from dashboard.views.common import flash, show_api_error


def render(
    client: Any, alert: Mapping[str, Any] | None, analyst: str, names: shaping.RecordNames
) -> None:
    if alert is None:
        st.subheader("Alert detail")
        st.caption("Open an alert from the queue to see it here.")
        return
    tx = alert.get("transaction_id")
    action = str(alert.get("action", ""))
    st.subheader(f"Transaction #{tx}")
    label = shaping.normalise_label(alert.get("label"))
    badge = shaping.ACTION_BADGE.get(action, action)
    who = alert.get("labelled_by") or alert.get("analyst")
    status = (
        f"labelled **{label}**" + (f" by {who}" if who else "")
        if label
        else "open — waiting for an analyst"
    )
    st.markdown(f"{badge} &nbsp;·&nbsp; {status}")

    amount = _num(alert.get("amount"))
    score = _num(alert.get("score"))
    c1, c2, c3, c4 = st.columns(4)
    c1.metric(names.amount, f"{amount:,.2f}" if not math.isnan(amount) else "—")
    c2.metric("Score", f"{score:.4f}" if not math.isnan(score) else "—")
    c3.metric(names.card, str(alert.get("card", "—")))
    c4.metric(names.merchant, str(alert.get("merchant", "—")))
    st.caption(
        f"{names.transaction_id} {tx} · {names.timestamp} {alert.get('tx_datetime', '—')} "
        f"(UTC) · decided {alert.get('decided_at', '—')} · model "
        f"{alert.get('model_version', '—')}"
    )

    if alert.get("label_note"):
        st.info(f"Analyst note: {alert['label_note']}", icon=":material/edit_note:")
    _label_controls(client, tx, label, analyst)

    st.markdown("**Reasons**")
    reasons = alert.get("reasons") or []
    if reasons:
        st.markdown("\n".join(f"- {_escape(str(r))}" for r in reasons))
    else:
        st.caption("No reason codes recorded.")
    fired = rule_shaping.fired_rules(alert)
    if fired:
        st.markdown("**Rules that fired**")
        st.markdown("\n".join(f"- {_escape(line)}" for line in fired))
    st.markdown("**Scores per model**")
    scores = shaping.scores_frame(alert.get("scores"))
    if scores.empty:
        st.caption("No per-model scores recorded.")
    else:
        st.dataframe(
            scores,
            hide_index=True,
            width="stretch",
            column_config={
                "Model": st.column_config.TextColumn(width="medium"),
                "Score": st.column_config.ProgressColumn(
                    format="%.4f", min_value=0.0, max_value=1.0, width="large"
                ),
            },
        )

    _card_section(client, alert, names)


def _label_controls(client: Any, tx: Any, current: str | None, analyst: str) -> None:
    note = st.text_input(
        "Note (optional)", key=f"note_{tx}", placeholder="e.g. cardholder confirmed by phone"
    )
    b1, b2 = st.columns(2)
    verb = "Relabel" if current else "Mark"
    choice = None
    if b1.button(
        f"{verb} fraud", key=f"fraud_{tx}", type="primary", icon=":material/flag:", width="stretch"
    ):
        choice = "fraud"
    if b2.button(
        f"{verb} legitimate", key=f"legit_{tx}", icon=":material/verified_user:", width="stretch"
    ):
        choice = "legitimate"
    if choice is None:
        return
    try:
        client.label(tx, choice, note=note.strip() or None, analyst=analyst or None)
    except Exception as exc:  # noqa: BLE001 - shown as a friendly message
        show_api_error(exc, where=f"Labelling #{tx} failed")
        return
    flash("success", f"Alert #{tx} labelled **{choice}**.")
    st.toast(f"#{tx} labelled {choice}", icon=":material/check:")
    st.rerun()  # the whole page: the queue drops or updates the alert at once


def _card_section(client: Any, alert: Mapping[str, Any], names: shaping.RecordNames) -> None:
    card_id = alert.get("card")
    st.markdown(f"**{_escape(names.card)} {_escape(str(card_id))}**")
    card: Mapping[str, Any] | None
    try:
        card = client.card(card_id)
    except ApiNotFound:
        card = None
        st.caption("The API has no state for this card yet.")
    except Exception as exc:  # noqa: BLE001
        show_api_error(exc, where="Card history")
        card = None
    history, card_features, tx_features, tx_fields = st.tabs(
        ["Recent transactions", "Card features", "This transaction's features", "Fields"]
    )
    tx, when, merchant, amount = (
        names.title(role) for role in ("transaction_id", "timestamp", "merchant", "amount")
    )
    with history:
        recent = shaping.recent_frame((card or {}).get("recent_decisions"), names)
        if recent.empty:
            st.caption("No recent transactions for this card.")
        else:
            st.dataframe(
                recent,
                hide_index=True,
                width="stretch",
                height=min(38 + 35 * len(recent), 300),
                column_config={
                    tx: st.column_config.TextColumn(),
                    merchant: st.column_config.TextColumn(),
                    amount: st.column_config.NumberColumn(format="%.2f"),
                    "Score": st.column_config.NumberColumn(format="%.4f"),
                    when: st.column_config.TextColumn(width="medium"),
                },
            )
    with card_features:
        feats = shaping.features_frame((card or {}).get("features"), names.features)
        if feats.empty:
            st.caption("No card features available.")
        else:
            st.dataframe(feats, hide_index=True, width="stretch", height=300)
    with tx_features:
        feats = shaping.features_frame(alert.get("features"), names.features)
        if feats.empty:
            st.caption("The decision carries no features.")
        else:
            st.dataframe(feats, hide_index=True, width="stretch", height=300)
    with tx_fields:
        fields = shaping.fields_frame(alert.get("fields"))
        if fields.empty:
            st.caption("The config declares no other fields for a transaction.")
        else:
            st.dataframe(fields, hide_index=True, width="stretch")


def _escape(text: str) -> str:
    """Reason codes as plain text in markdown (">=" and "*" must not format)."""
    for char in "\\`*_[]<>#|~$":
        text = text.replace(char, "\\" + char)
    return text


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
