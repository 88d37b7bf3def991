"""The Rules view: every rule with its live hit counts, an editor that shows the API's
validation inline, the backtest chart, and the lifecycle buttons (shadow, activate with the
alert-budget confirmation, retire). Every change goes through the API, which keeps the
versions and the audit log and publishes the change to the running workers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import streamlit as st

from dashboard import rule_shaping as shaping
from dashboard.client import ApiError, RuleSpec
from dashboard.views import lists
from dashboard.views.common import flash, guarded, show_api_error, show_flash

PICK_KEY = "rule_pick"
_NEXT_PICK_KEY = "rule_pick_next"  # set after a save; applied before the picker is drawn
_ERROR_KEY = "rule_editor_error"  # (rule pick, expression, the API's 422 body)
_BACKTEST_KEY = "rule_backtest"  # {(rule id, version): result}
_BUDGET_KEY = "rule_budget"  # {rule id: the API's 409 budget body}
BACKTEST_DAYS = (7, 14, 30, 90)


def render(client: Any) -> None:
    st.title(":material/rule: Rules")
    st.caption(
        "Rules are CEL expressions over the transaction's fields and features, e.g. "
        "`amount > 1000 && card in lists.watched_cards`. A draft runs nowhere; a shadow "
        "rule is recorded on every decision without changing it; an active rule decides. "
        "Changes reach the running workers within seconds."
    )
    names = guarded(client.rule_names, quiet=True)
    if names is not None:
        with st.expander(f"Names a rule can use ({len(names['items'])})"):
            frame = shaping.names_frame(names)
            st.dataframe(frame, hide_index=True, width="stretch", height=240)
    show_flash()
    items = guarded(client.list_rules, where="Rules")
    if items is None:
        return
    by_id = {int(item["rule_id"]): item for item in items}
    _table(items)

    options = [shaping.NEW_RULE, *sorted(by_id, reverse=True)]
    if _NEXT_PICK_KEY in st.session_state:
        st.session_state[PICK_KEY] = st.session_state.pop(_NEXT_PICK_KEY)
    if st.session_state.get(PICK_KEY) not in options:
        st.session_state[PICK_KEY] = options[1] if len(options) > 1 else shaping.NEW_RULE
    pick = st.selectbox(
        "Open rule",
        options,
        key=PICK_KEY,
        format_func=lambda key: shaping.rule_option(key, by_id),
    )
    chosen = None if pick == shaping.NEW_RULE else by_id.get(int(pick))
    left, right = st.columns([1, 1], gap="large")
    with left, st.container(border=True):
        _editor(client, chosen)
    with right, st.container(border=True):
        if chosen is None:
            st.subheader("Backtest")
            st.caption("Save the draft first: a backtest runs a saved version.")
        else:
            _lifecycle(client, chosen)
            _backtest(client, chosen)
    if chosen is not None:
        _live_hits(client, chosen)
        _history(client, chosen)
    st.divider()
    lists.render(client)


def _table(items: list[Mapping[str, Any]]) -> None:
    st.subheader("All rules")
    if not items:
        st.info("No rules yet: write the first one below.", icon=":material/rule:")
        return
    st.dataframe(
        shaping.rules_frame(items),
        hide_index=True,
        width="stretch",
        height=min(38 + 35 * len(items), 320),
        column_config={
            "Rule": st.column_config.NumberColumn(width="small", format="%d"),
            "Expression": st.column_config.TextColumn(width="large"),
            "Live hits": st.column_config.NumberColumn(
                help="decisions this rule matched as an active rule (every version)"
            ),
            "Shadow hits": st.column_config.NumberColumn(
                help="decisions it matched in shadow, without changing them"
            ),
            "Last hit": st.column_config.TextColumn(help="event day of its newest match"),
        },
    )


# ---------------------------------------------------------------------------- editor


def _editor(client: Any, rule: Mapping[str, Any] | None) -> None:
    key = "new" if rule is None else f"{rule['rule_id']}_{rule['version']}"
    if rule is None:
        st.subheader("New rule")
    else:
        badge = shaping.STATE_BADGE.get(rule["state"], rule["state"])
        st.subheader(f"Rule {rule['rule_id']} · version {rule['version']}")
        st.markdown(f"{badge} &nbsp; last changed by {rule.get('changed_by', '?')}")
    if rule is not None and rule["state"] == "active":
        st.caption("An active rule is not edited in place: retire it first, or write a new rule.")
    with st.form(f"rule_form_{key}", border=False):
        expression = st.text_area(
            "Expression",
            value=(rule or {}).get("expression", ""),
            height=110,
            placeholder="amount > 1000 && card_count_1d >= 4",
            key=f"rule_expression_{key}",
        )
        _inline_error(key)
        c1, c2 = st.columns(2)
        current = (rule or {}).get("action", "review")
        action = c1.selectbox(
            "Action",
            shaping.RULE_ACTIONS,
            index=shaping.RULE_ACTIONS.index(current) if current in shaping.RULE_ACTIONS else 0,
            help="block and allow are final; review asks for review at least; tag only adds "
            "the reason",
            key=f"rule_action_{key}",
        )
        priority = c2.number_input(
            "Priority",
            min_value=0,
            max_value=1000,
            value=int((rule or {}).get("priority", 0)),
            help="when rules disagree, the highest priority wins",
            key=f"rule_priority_{key}",
        )
        reason = st.text_input(
            "Reason (what a decision says)",
            value=(rule or {}).get("reason", ""),
            key=f"rule_reason_{key}",
        )
        note = st.text_input("Why this change (kept in the history)", key=f"rule_note_{key}")
        saved = st.form_submit_button(
            "Save draft",
            type="primary",
            icon=":material/save:",
            disabled=rule is not None and rule["state"] == "active",
        )
    if not saved:
        return
    spec = RuleSpec(
        expression=expression,
        action=action,
        reason=reason.strip(),
        priority=int(priority),
        note=note.strip() or None,
    )
    if not spec.reason:
        st.session_state[_ERROR_KEY] = (key, {"detail": "reason: write what a decision says"})
        st.rerun()
    try:
        if rule is None:
            version = client.create_rule(spec)
        else:
            version = client.edit_rule(rule["rule_id"], spec)
    except ApiError as exc:
        if exc.status == 422:
            st.session_state[_ERROR_KEY] = (key, _body(exc) or {"detail": exc.message})
            st.rerun()
        show_api_error(exc, where="Saving the rule failed")
        return
    st.session_state.pop(_ERROR_KEY, None)
    st.session_state[_NEXT_PICK_KEY] = int(version["rule_id"])
    flash("success", f"Rule {version['rule_id']} saved as draft version {version['version']}.")
    st.rerun()


def _inline_error(key: str) -> None:
    """The API's 422 for this editor, under the expression, with a caret at the column."""
    stored = st.session_state.get(_ERROR_KEY)
    if not stored or stored[0] != key:
        return
    body = stored[1]
    st.error(shaping.expression_error(body, "the API refused the rule"), icon=":material/error:")
    expression = st.session_state.get(f"rule_expression_{key}", "")
    caret = shaping.caret_line(expression, body)
    if caret:
        st.code(caret, language=None)


# ---------------------------------------------------------------------------- lifecycle


def _lifecycle(client: Any, rule: Mapping[str, Any]) -> None:
    rule_id = int(rule["rule_id"])
    st.subheader("Go live")
    moves = shaping.next_moves(rule["state"])
    c1, c2, c3 = st.columns(3)
    chosen = None
    if c1.button(
        "Shadow",
        key=f"shadow_{rule_id}",
        disabled="shadow" not in moves,
        icon=":material/visibility:",
    ):
        chosen = "shadow"
    if c2.button(
        "Activate",
        key=f"activate_{rule_id}",
        type="primary",
        disabled="activate" not in moves,
        icon=":material/play_arrow:",
    ):
        chosen = "activate"
    if c3.button(
        "Retire", key=f"retire_{rule_id}", disabled="retire" not in moves, icon=":material/stop:"
    ):
        chosen = "retire"
    budget = st.session_state.get(_BUDGET_KEY, {}).get(rule_id)
    if budget is not None and rule["state"] == "shadow":
        st.warning(
            f"**Over the alert budget.** {budget.get('detail', '')}", icon=":material/warning:"
        )
        if st.button(
            "Activate anyway", key=f"confirm_{rule_id}", type="primary", icon=":material/done_all:"
        ):
            chosen = "confirm"
    if chosen is not None:
        _move(client, rule_id, chosen)


def _move(client: Any, rule_id: int, move: str) -> None:
    budgets = st.session_state.setdefault(_BUDGET_KEY, {})
    try:
        if move == "shadow":
            version = client.shadow_rule(rule_id)
        elif move == "retire":
            version = client.retire_rule(rule_id)
        else:
            version = client.activate_rule(rule_id, confirm=move == "confirm")
    except ApiError as exc:
        body = _body(exc) or {}
        if exc.status == 409 and "budget" in body:
            budgets[rule_id] = body
            st.rerun()
        show_api_error(exc, where=f"Rule {rule_id}")
        return
    budgets.pop(rule_id, None)
    flash(
        "success", f"Rule {rule_id} is now **{version['state']}** (version {version['version']})."
    )
    st.rerun()


# ---------------------------------------------------------------------------- backtest


def _backtest(client: Any, rule: Mapping[str, Any]) -> None:
    rule_id, version = int(rule["rule_id"]), int(rule["version"])
    st.subheader("Backtest")
    c1, c2 = st.columns([2, 1], vertical_alignment="bottom")
    days = c1.selectbox(
        "Over the stored decisions of the last",
        BACKTEST_DAYS,
        format_func=lambda d: f"{d} days",
        key=f"backtest_days_{rule_id}",
    )
    results = st.session_state.setdefault(_BACKTEST_KEY, {})
    if c2.button("Run backtest", key=f"backtest_{rule_id}", icon=":material/query_stats:"):
        try:
            with st.spinner("Running the rule over the stored decisions..."):
                results[(rule_id, version)] = client.backtest_rule(rule_id, days=int(days))
        except ApiError as exc:
            show_api_error(exc, where="Backtest failed")
    result = results.get((rule_id, version))
    if result is None:
        st.caption("What the rule would have caught: hits per day, new alerts, precision.")
        return
    st.caption(f"Version {version} over {result['start']} to {result['end']} (exclusive).")
    summary = shaping.backtest_summary(result)
    for row in (summary[:3], summary[3:]):  # five figures do not fit one row of half a page
        for column, (title, value, hint) in zip(st.columns(3), row, strict=False):
            column.metric(title, value, help=hint)
    frame = shaping.backtest_frame(result)
    if frame.empty:
        st.info("No stored decisions in this period.", icon=":material/info:")
    else:
        st.bar_chart(
            frame,
            x="Day",
            y=["New alerts", "Other hits"],
            color=["#d62728", "#9ecae1"],
            height=240,
        )
    if result.get("errors"):
        examples = "; ".join(
            f"{e['transaction_id']}: {e['error']}" for e in result.get("error_examples", [])[:3]
        )
        st.warning(
            f"The rule could not answer {result['errors']:,} decisions ({examples}).",
            icon=":material/warning:",
        )


# ---------------------------------------------------------------------------- live


def _live_hits(client: Any, rule: Mapping[str, Any]) -> None:
    st.subheader("Live hits")
    body = guarded(lambda: client.rule_hits(int(rule["rule_id"])), where="Live hits")
    if body is None:
        return
    frame = shaping.hits_frame(body.get("days"))
    if frame.empty:
        st.caption("No decision has named this rule yet.")
        return
    st.bar_chart(frame, x="Day", y=["Active", "Shadow"], color=["#2ca02c", "#9467bd"], height=200)


def _history(client: Any, rule: Mapping[str, Any]) -> None:
    with st.expander("Versions: who changed the rule, when and why"):
        full = guarded(lambda: client.get_rule(int(rule["rule_id"])), where="History")
        if full is not None:
            st.dataframe(
                shaping.history_frame(full.get("history")), hide_index=True, width="stretch"
            )


def _body(exc: ApiError) -> dict[str, Any] | None:
    body = getattr(exc, "body", None)
    return body if isinstance(body, dict) else None
