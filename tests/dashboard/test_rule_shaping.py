"""The Rules view's shaping: API bodies into the table, the backtest chart and the texts."""

from __future__ import annotations

from dashboard import rule_shaping as shaping

RULE = {
    "rule_id": 3,
    "version": 2,
    "state": "shadow",
    "expression": "amount > 1000",
    "action": "block",
    "priority": 5,
    "reason": "large amount",
    "hits_active": 0,
    "hits_shadow": 12,
    "last_hit_day": "2018-08-01",
}


def test_rules_frame_has_one_row_per_rule_with_its_hits():
    frame = shaping.rules_frame([RULE, {**RULE, "rule_id": 4, "hits_shadow": None}])
    assert list(frame.columns) == shaping.RULE_COLUMNS
    assert frame["Rule"].tolist() == [3, 4]
    assert frame["Shadow hits"].tolist() == [12, 0]
    assert frame["Last hit"].iloc[0] == "2018-08-01"


def test_rule_option_names_the_rule_and_the_new_entry():
    assert shaping.rule_option(shaping.NEW_RULE, {}) == "＋ New rule"
    text = shaping.rule_option(3, {3: {**RULE, "reason": "x" * 100}})
    assert text.startswith("Rule 3 · xxx") and text.endswith("...") and len(text) == 69


def test_next_moves_follow_the_lifecycle():
    assert shaping.next_moves("draft") == ("shadow",)
    assert shaping.next_moves("shadow") == ("activate", "retire")
    assert shaping.next_moves("active") == ("retire",)
    assert shaping.next_moves(None) == ()


def test_expression_error_says_where_and_the_caret_points_there():
    body = {
        "detail": "expression: line 2, column 3: unknown name 'amout' (did you mean 'amount'?)",
        "field": "expression",
        "line": 2,
        "column": 3,
    }
    assert shaping.expression_error(body, "x") == body["detail"]
    bare = {"detail": "unknown name", "line": 1, "column": 9}
    assert shaping.expression_error(bare, "x") == "line 1, column 9: unknown name"
    assert shaping.expression_error(None, "fallback") == "fallback"
    assert shaping.caret_line("amount > 1\n&& amout > 2", body) == "&& amout > 2\n  ^"
    assert shaping.caret_line("a", {"line": 5, "column": 1}) is None


def test_backtest_frame_splits_hits_into_new_alerts_and_the_rest():
    result = {
        "days": [
            {"day": "2018-08-01", "rows": 100, "hits": 10, "added_alerts": 4, "model_alerts": 7},
            {"day": "2018-08-02", "rows": 90, "hits": 0, "added_alerts": 0, "model_alerts": 3},
        ]
    }
    frame = shaping.backtest_frame(result)
    assert frame["New alerts"].tolist() == [4, 0]
    assert frame["Other hits"].tolist() == [6, 0]
    assert frame["Model alerts"].tolist() == [7, 3]
    assert shaping.backtest_frame({"days": []}).empty


def test_backtest_summary_shows_shares_and_missing_ones_as_dashes():
    summary = dict(
        (title, value)
        for title, value, _ in shaping.backtest_summary(
            {
                "hits": 10,
                "rows": 190,
                "added_alerts": 4,
                "added_alerts_per_day": 2.0,
                "max_added_alerts_in_a_day": 4,
                "precision": 0.5,
                "recall": None,
                "overlap_share_of_hits": 0.6,
                "overlap": 6,
                "fraud_hits": 2,
                "labelled_hits": 4,
                "labelled_frauds": 0,
            }
        )
    )
    assert summary == {
        "Hits": "10",
        "New alerts / day": "2.0",
        "Precision": "50%",
        "Recall": "—",
        "Overlap with model alerts": "60%",
    }


def test_hits_frame_puts_active_and_shadow_side_by_side_per_day():
    days = [
        {"day": "2018-08-02", "version": 1, "shadow": True, "hits": 3},
        {"day": "2018-08-01", "version": 1, "shadow": True, "hits": 2},
        {"day": "2018-08-02", "version": 2, "shadow": False, "hits": 5},
        {"day": "2018-08-02", "version": 3, "shadow": False, "hits": 1},
    ]
    frame = shaping.hits_frame(days)
    assert frame.to_dict("records") == [
        {"Day": "2018-08-01", "Active": 0, "Shadow": 2},
        {"Day": "2018-08-02", "Active": 6, "Shadow": 3},
    ]


def test_history_is_newest_first_and_fired_rules_flag_shadow():
    history = [{**RULE, "version": 1, "state": "draft"}, RULE]
    assert shaping.history_frame(history)["Version"].tolist() == [2, 1]
    alert = {
        "rules": [
            {"id": 3, "version": 2, "action": "block", "shadow": False},
            {"id": 7, "version": 1, "action": "review", "shadow": True},
            {"id": "deny_cards", "version": None, "action": "block", "shadow": False},
        ]
    }
    assert shaping.fired_rules(alert) == [
        "Rule 3 v2 · block",
        "Rule 7 v1 · review · shadow (did not change the decision)",
        "Rule deny_cards · block",
    ]


def test_names_frame_lists_fields_features_then_lists():
    names = {"items": [{"name": "amount", "kind": "number"}], "lists": ["vip_cards"]}
    assert shaping.names_frame(names).to_dict("records") == [
        {"Name": "amount", "Kind": "number"},
        {"Name": "lists.vip_cards", "Kind": "list"},
    ]


def test_lists_frame_names_each_list_as_a_rule_reads_it():
    frame = shaping.lists_frame(
        [{"name": "vip_cards", "size": 3, "version": 2, "changed_by": "admin:cy"}]
    )
    assert frame.to_dict("records") == [
        {
            "List": "lists.vip_cards",
            "Items": 3,
            "Version": 2,
            "Changed by": "admin:cy",
            "Changed at": "",
            "Note": "",
        }
    ]
