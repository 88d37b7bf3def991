"""Rules as the analyst page shows them: API bodies of /v1/rules... turned into frames and
texts (pure functions, no Streamlit), tested in tests/dashboard/test_rule_shaping.py."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

RULE_ACTIONS = ("review", "block", "allow", "tag")
STATE_BADGE = {
    "draft": ":gray-badge[draft]",
    "shadow": ":violet-badge[shadow]",
    "active": ":green-badge[active]",
    "retired": ":orange-badge[retired]",
}
RULE_COLUMNS = [
    "Rule",
    "State",
    "Action",
    "Priority",
    "Version",
    "Reason",
    "Expression",
    "Live hits",
    "Shadow hits",
    "Last hit",
]
NEW_RULE = "new"


def rules_frame(items: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per rule (its newest version) with its live hit counts."""
    rows = [
        [
            int(item["rule_id"]),
            str(item.get("state", "")),
            str(item.get("action", "")),
            int(item.get("priority") or 0),
            int(item.get("version") or 0),
            str(item.get("reason", "")),
            str(item.get("expression", "")),
            int(item.get("hits_active") or 0),
            int(item.get("hits_shadow") or 0),
            item.get("last_hit_day") or "",
        ]
        for item in items
    ]
    return pd.DataFrame(rows, columns=RULE_COLUMNS)


def rule_option(rule_id: Any, by_id: Mapping[int, Mapping[str, Any]]) -> str:
    """The text of a rule in the picker: 'Rule 3 · reason'. Only what seldom changes: the
    browser keeps showing an option's first text while the same option stays picked."""
    if rule_id == NEW_RULE:
        return "＋ New rule"
    reason = str(by_id.get(int(rule_id), {}).get("reason", ""))
    reason = reason if len(reason) <= 60 else reason[:57] + "..."
    return f"Rule {rule_id} · {reason}" if reason else f"Rule {rule_id}"


def next_moves(state: str | None) -> tuple[str, ...]:
    """The lifecycle moves the page offers for a rule in `state` (the API decides)."""
    return {
        "draft": ("shadow",),
        "shadow": ("activate", "retire"),
        "active": ("retire",),
        "retired": ("shadow",),
    }.get(state or "", ())


def expression_error(body: Mapping[str, Any] | None, fallback: str) -> str:
    """A 422's message with where in the expression it is ('line 1, column 8: ...')."""
    if not isinstance(body, Mapping):
        return fallback
    message = str(body.get("detail") or fallback)
    line, column = body.get("line"), body.get("column")
    if line is not None and column is not None:
        where = f"line {line}, column {column}"
        return message if where in message else f"{where}: {message}"
    return message


def caret_line(expression: str, body: Mapping[str, Any] | None) -> str | None:
    """The offending line of the expression with a caret under the column, or None."""
    if not isinstance(body, Mapping):
        return None
    line, column = body.get("line"), body.get("column")
    if not isinstance(line, int) or not isinstance(column, int):
        return None
    lines = expression.splitlines() or [""]
    if not 1 <= line <= len(lines):
        return None
    text = lines[line - 1]
    return f"{text}\n{' ' * max(0, column - 1)}^"


def backtest_frame(result: Mapping[str, Any]) -> pd.DataFrame:
    """Per event day: the rule's hits split into the alerts it would add and the rest, and
    the alerts the model raised that day (for the backtest chart)."""
    rows = []
    for day in result.get("days") or []:
        hits, added = int(day.get("hits", 0)), int(day.get("added_alerts", 0))
        rows.append(
            {
                "Day": str(day.get("day")),
                "New alerts": added,
                "Other hits": max(0, hits - added),
                "Model alerts": int(day.get("model_alerts", 0)),
                "Decisions": int(day.get("rows", 0)),
            }
        )
    return pd.DataFrame(
        rows, columns=["Day", "New alerts", "Other hits", "Model alerts", "Decisions"]
    )


def backtest_summary(result: Mapping[str, Any]) -> list[tuple[str, str, str | None]]:
    """(title, value, help) of the backtest's headline figures."""

    def share(value: Any) -> str:
        return "—" if value is None else f"{float(value):.0%}"

    hits, rows = int(result.get("hits", 0)), int(result.get("rows", 0))
    return [
        ("Hits", f"{hits:,}", f"of {rows:,} stored decisions"),
        (
            "New alerts / day",
            f"{float(result.get('added_alerts_per_day', 0.0)):.1f}",
            f"{int(result.get('added_alerts', 0)):,} in all, at most "
            f"{int(result.get('max_added_alerts_in_a_day', 0)):,} in a day",
        ),
        (
            "Precision",
            share(result.get("precision")),
            f"{int(result.get('fraud_hits', 0))} fraud of "
            f"{int(result.get('labelled_hits', 0))} labelled hits",
        ),
        (
            "Recall",
            share(result.get("recall")),
            f"{int(result.get('fraud_hits', 0))} of {int(result.get('labelled_frauds', 0))} "
            "labelled frauds",
        ),
        (
            "Overlap with model alerts",
            share(result.get("overlap_share_of_hits")),
            f"{int(result.get('overlap', 0)):,} hits were already alerts",
        ),
    ]


def hits_frame(days: Sequence[Mapping[str, Any]] | None) -> pd.DataFrame:
    """Live hits per event day, active and shadow side by side (every version summed)."""
    rows: dict[str, dict[str, int]] = {}
    for day in days or []:
        mode = "Shadow" if day.get("shadow") else "Active"
        slot = rows.setdefault(str(day.get("day")), {"Active": 0, "Shadow": 0})
        slot[mode] += int(day.get("hits", 0))
    return pd.DataFrame(
        [{"Day": d, **counts} for d, counts in sorted(rows.items())],
        columns=["Day", "Active", "Shadow"],
    )


def history_frame(history: Iterable[Mapping[str, Any]] | None) -> pd.DataFrame:
    """Every version of a rule, newest first: who changed it, when, why."""
    rows = [
        {
            "Version": int(v.get("version", 0)),
            "State": str(v.get("state", "")),
            "Action": str(v.get("action", "")),
            "Priority": int(v.get("priority") or 0),
            "Expression": str(v.get("expression", "")),
            "Changed by": str(v.get("changed_by", "")),
            "Changed at": str(v.get("changed_at", "")),
            "Note": str(v.get("note") or ""),
        }
        for v in history or []
    ]
    frame = pd.DataFrame(
        rows,
        columns=[
            "Version",
            "State",
            "Action",
            "Priority",
            "Expression",
            "Changed by",
            "Changed at",
            "Note",
        ],
    )
    return frame.iloc[::-1].reset_index(drop=True)


def names_frame(names: Mapping[str, Any]) -> pd.DataFrame:
    """(Name, Kind) of what a rule may read (GET /v1/rules/names), in the config's order,
    then the lists as lists.<name>."""
    rows = [{"Name": item["name"], "Kind": item["kind"]} for item in names.get("items", [])]
    rows += [{"Name": f"lists.{name}", "Kind": "list"} for name in names.get("lists", [])]
    return pd.DataFrame(rows, columns=["Name", "Kind"])


def lists_frame(summaries: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per list (GET /v1/lists): its name as a rule reads it, size and version."""
    rows = [
        {
            "List": f"lists.{s['name']}",
            "Items": int(s.get("size") or 0),
            "Version": int(s.get("version") or 0),
            "Changed by": str(s.get("changed_by", "")),
            "Changed at": str(s.get("changed_at", "")),
            "Note": str(s.get("note") or ""),
        }
        for s in summaries
    ]
    return pd.DataFrame(
        rows, columns=["List", "Items", "Version", "Changed by", "Changed at", "Note"]
    )


def fired_rules(alert: Mapping[str, Any]) -> list[str]:
    """The rules that matched an alert, as lines: 'Rule 3 v2 · block' (shadow flagged)."""
    lines = []
    for hit in alert.get("rules") or []:
        version = hit.get("version")
        name = f"Rule {hit.get('id')}" + (f" v{version}" if version is not None else "")
        mode = " · shadow (did not change the decision)" if hit.get("shadow") else ""
        lines.append(f"{name} · {hit.get('action', '')}{mode}")
    return lines
