"""The analyst page's logic under Streamlit's AppTest, with the API faked at the client;
the page titles the record's parts with the config's names (AEGIS_CONFIG)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.views.common import CLIENT_KEY
from tests.dashboard.sample_data import FakeClient, decisions

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "dashboard" / "app.py")


@pytest.fixture(autouse=True)
def handbook_config(monkeypatch):
    """The default preset unless a test names another config."""
    monkeypatch.delenv("AEGIS_CONFIG", raising=False)


def run_page(client: FakeClient) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    at.session_state[CLIENT_KEY] = client
    return at.run()


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    parts += [s.value for s in at.subheader] + [s.value for s in at.success]
    return "\n".join(str(p) for p in parts)


def queue_ids(at: AppTest, column: str = "TRANSACTION_ID") -> list[str]:
    return list(at.dataframe[0].value[column])


def test_renders_queue_detail_and_charts():
    client = FakeClient()
    at = run_page(client)
    assert not at.exception
    assert not at.error
    open_ids = [r["transaction_id"] for r in client.rows if r["status"] == "open"]
    assert queue_ids(at) == open_ids[:50]  # default: open alerts, newest first, 50 rows
    newest = open_ids[0]
    assert f"Transaction #{newest}" in texts(at)
    assert at.selectbox(key="selected_alert").value == newest
    # the record's parts under the config's names (configs/handbook.toml)
    assert {m.label for m in at.metric} >= {
        "TX_AMOUNT",
        "Score",
        "CUSTOMER_ID",
        "TERMINAL_ID",
        "Transactions decided",
        "Alerts raised",
        "Active model",
    }
    row = next(r for r in client.rows if r["transaction_id"] == newest)
    shown = {m.label: m.value for m in at.metric}
    assert shown["CUSTOMER_ID"] == row["card"] and shown["TERMINAL_ID"] == row["merchant"]
    assert "Active model" in texts(at)
    assert list(at.dataframe[0].value.columns)[:6] == [
        "TRANSACTION_ID",
        "Decided",
        "Action",
        "Score",
        "TX_AMOUNT",
        "CUSTOMER_ID",
    ]
    assert f"**CUSTOMER\\_ID {row['card']}**" in texts(at)  # markdown-escaped
    assert ("card", {"card": row["card"]}) in client.calls
    # the first /v1/alerts call of the page is the queue, with the default filters
    first = next(params for name, params in client.calls if name == "alerts")
    assert first["status"] == "open" and first["limit"] == 50


def test_filter_changes_reach_the_api():
    client = FakeClient()
    at = run_page(client)
    client.calls.clear()
    at.sidebar.multiselect(key="f_actions").set_value(["block"])
    at.sidebar.slider(key="f_score").set_value((0.995, 1.0))
    at.sidebar.segmented_control(key="f_status").set_value("All")
    at.run()
    assert not at.exception
    queue_call = next(params for name, params in client.calls if name == "alerts")
    assert queue_call["action"] == "block"
    assert queue_call["min_score"] == 0.995
    assert "status" not in queue_call
    shown = queue_ids(at)
    assert shown and all(
        r["action"] == "block" and r["score"] >= 0.995
        for r in client.rows
        if r["transaction_id"] in shown
    )


def test_search_and_rule_filters_reach_the_api():
    client = FakeClient()
    client.rules = [
        {"rule_id": 3, "version": 2, "state": "shadow", "reason": "large amount", "action": "block"}
    ]
    at = run_page(client)
    client.calls.clear()
    at.sidebar.text_input(key="f_search").set_value(" 4242 ")
    at.sidebar.selectbox(key="f_rule").set_value(3)
    at.run()
    assert not at.exception
    queue_call = next(params for name, params in client.calls if name == "alerts")
    assert queue_call["q"] == "4242" and queue_call["rule"] == 3 and "shadow" not in queue_call
    client.calls.clear()
    at.sidebar.segmented_control(key="f_rule_mode").set_value("Shadow")
    at.run()
    queue_call = next(params for name, params in client.calls if name == "alerts")
    assert queue_call["rule"] == 3 and queue_call["shadow"] is True


def test_the_alert_names_the_rules_that_fired():
    rows = decisions(5)
    rows[0]["rules"] = [
        {"id": 3, "version": 2, "action": "block", "shadow": False},
        {"id": 7, "version": 1, "action": "review", "shadow": True},
    ]
    at = run_page(FakeClient(rows))
    assert not at.exception
    shown = texts(at)
    assert "**Rules that fired**" in shown
    assert "Rule 3 v2 · block" in shown
    assert "Rule 7 v1 · review · shadow (did not change the decision)" in shown


def _bulk_bar() -> None:
    import streamlit as st

    from dashboard.views import bulk
    from dashboard.views.common import get_client, show_flash

    show_flash()
    bulk.render(get_client(), st.session_state.get("ticked", []), "ana")


def test_ticked_alerts_are_labelled_together():
    client = FakeClient()
    ids = [r["transaction_id"] for r in client.rows[:3]]
    at = AppTest.from_function(_bulk_bar, default_timeout=30)
    at.session_state[CLIENT_KEY] = client
    at.session_state["ticked"] = [*ids, "no-such-alert"]
    at.run()
    assert "**4 alerts ticked**" in texts(at)
    at.text_input(key="bulk_note").set_value("same breach")
    at.button(key="bulk_fraud").click()
    at.run()
    assert not at.exception
    assert [(x["transaction_id"], x["label"], x["note"]) for x in client.labels] == [
        (tx, "fraud", "same breach") for tx in ids
    ]
    (warning,) = at.warning
    assert "3 alerts labelled **fraud**" in warning.value and "no-such-alert" in warning.value


def test_the_queue_holds_still_while_rows_are_ticked():
    """A tick is a row number: a new alert arriving on top must not move it onto another."""
    client = FakeClient()
    at = run_page(client)
    first, second = queue_ids(at)[:2]
    at.session_state["queue_table_0"] = {"selection": {"rows": [0, 1]}}
    at.run()
    newer = {**copy.deepcopy(client.rows[0]), "transaction_id": "990001"}
    client.rows.insert(0, newer)  # decided since the rows were ticked
    at.run()
    assert not at.exception
    assert queue_ids(at)[:2] == [first, second]  # the rows the analyst ticked, in place
    assert at.session_state["queue_ticked"] == [first, second]
    assert "held while rows are ticked" in texts(at)
    assert f"Transactions {first}, {second}" in texts(at)
    at.button(key="bulk_fraud").click()
    at.run()
    assert [x["transaction_id"] for x in client.labels] == [first, second]
    assert queue_ids(at)[0] == "990001"  # no ticks left: the queue moves on
    assert "held while rows are ticked" not in texts(at)


def test_clear_ticks_lets_the_queue_move_on():
    client = FakeClient()
    at = run_page(client)
    at.session_state["queue_table_0"] = {"selection": {"rows": [2]}}
    at.run()
    client.rows.insert(0, {**copy.deepcopy(client.rows[0]), "transaction_id": "990002"})
    at.run()
    assert queue_ids(at)[0] != "990002"
    at.button(key="bulk_clear").click()
    at.run()
    assert not at.exception
    assert queue_ids(at)[0] == "990002" and at.session_state["queue_ticked"] == []
    assert client.labels == []


def test_other_filters_drop_the_ticks():
    client = FakeClient()
    at = run_page(client)
    at.session_state["queue_table_0"] = {"selection": {"rows": [0]}}
    at.run()
    assert at.session_state["queue_ticked"] == [queue_ids(at)[0]]
    at.sidebar.selectbox(key="f_limit").set_value(at.sidebar.selectbox(key="f_limit").options[0])
    at.run()
    assert not at.exception
    assert at.session_state["queue_ticked"] == []
    assert "held while rows are ticked" not in texts(at)


def test_time_window_filter_sends_since():
    client = FakeClient()
    at = run_page(client)
    client.calls.clear()
    at.sidebar.selectbox(key="f_window").set_value("Last 15 minutes")
    at.run()
    queue_call = next(params for name, params in client.calls if name == "alerts")
    assert "since" in queue_call
    assert len(queue_ids(at)) < len([r for r in client.rows if r["status"] == "open"])


def test_label_button_calls_the_client_and_updates_the_queue():
    client = FakeClient()
    at = run_page(client)
    target = at.selectbox(key="selected_alert").value
    at.sidebar.text_input(key="f_analyst").set_value("ana")
    at.text_input(key=f"note_{target}").set_value("called the cardholder")
    at.button(key=f"fraud_{target}").click()
    at.run()
    assert not at.exception
    assert client.labels == [
        {"transaction_id": target, "label": "fraud", "note": "called the cardholder"}
    ]
    row = next(r for r in client.rows if r["transaction_id"] == target)
    assert row["labelled_by"] == "ana"
    assert target not in queue_ids(at)  # open queue: the labelled alert is gone at once
    assert any(f"#{target} labelled" in s.value for s in at.success)
    # the next open alert is opened for the analyst
    assert at.selectbox(key="selected_alert").value == queue_ids(at)[0]


def test_mark_legitimate_from_a_picked_alert():
    client = FakeClient()
    at = run_page(client)
    target = queue_ids(at)[3]
    at.selectbox(key="selected_alert").set_value(target)
    at.run()
    assert f"Transaction #{target}" in texts(at)
    at.button(key=f"legit_{target}").click()
    at.run()
    assert client.labels[-1]["transaction_id"] == target
    assert client.labels[-1]["label"] == "legitimate"


def test_api_down_is_a_friendly_error():
    at = run_page(FakeClient(mode="down"))
    assert not at.exception
    errors = [e.value for e in at.error]
    assert errors and "API unreachable" in errors[0]
    assert "Traceback" not in "\n".join(errors)
    assert not at.dataframe


def test_bad_token_is_a_friendly_error():
    at = run_page(FakeClient(mode="bad-token"))
    assert not at.exception
    errors = [e.value for e in at.error]
    assert errors and "Not authorised" in errors[0] and "--token" in errors[0]


def test_refused_label_keeps_the_alert_and_explains():
    client = FakeClient(mode="bad-token-writes")
    at = run_page(client)
    target = at.selectbox(key="selected_alert").value
    at.button(key=f"fraud_{target}").click()
    at.run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert any("Labelling" in e and "--token" in e for e in errors)
    assert target in queue_ids(at)
    assert client.labels == []


def test_empty_queue_says_so():
    at = run_page(FakeClient(rows=[]))
    assert not at.exception and not at.error
    assert any("No alerts match" in i.value for i in at.info)


@pytest.mark.parametrize("mode", ["down", "bad-token"])
def test_real_client_errors_render_without_traceback(mode):
    """The real AegisClient against a refusing transport still gives a friendly page."""
    import httpx

    from dashboard.client import AegisClient

    def handler(request: httpx.Request) -> httpx.Response:
        if mode == "down":
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(401, json={"detail": "missing or wrong bearer token"})

    client = AegisClient("http://127.0.0.1:9", "t", transport=httpx.MockTransport(handler))
    at = AppTest.from_file(APP, default_timeout=30)
    at.session_state[CLIENT_KEY] = client
    at.run()
    assert not at.exception
    assert at.error
    assert ("unreachable" if mode == "down" else "refused") in at.error[0].value


def test_sparkov_config_names_the_columns(monkeypatch):
    """Under configs/sparkov.toml the page says cc_num, merchant, amt; features, fields and
    the card's history by their configured names; a hex id is labelled as it is."""
    monkeypatch.setenv("AEGIS_CONFIG", str(ROOT / "configs" / "sparkov.toml"))
    client = FakeClient(decisions(30, flavour="sparkov"))
    at = run_page(client)
    assert not at.exception and not at.error
    columns = list(at.dataframe[0].value.columns)
    assert columns[0] == "trans_num" and "cc_num" in columns and "amt" in columns
    assert not {"Tx", "Card", "Amount", "TRANSACTION_ID", "CUSTOMER_ID"} & set(columns)
    target = at.selectbox(key="selected_alert").value
    row = next(r for r in client.rows if r["transaction_id"] == target)
    assert queue_ids(at, "trans_num")[0] == target and len(target) == 32
    shown = {m.label: m.value for m in at.metric}
    assert shown["cc_num"] == row["card"] and shown["merchant"] == row["merchant"]
    assert "amt" in shown
    tables = [d.value for d in at.dataframe]
    # the transaction's own features (the last features table), in the config's order
    features = [t for t in tables if list(t.columns) == ["Feature", "Value"]][-1]
    assert features["Feature"].tolist() == [
        "amount",
        "category",
        "card_count_1d",
        "merchant_fraud_share_7d",
    ]
    fields = next(t for t in tables if list(t.columns) == ["Field", "Value"])
    assert fields["Field"].tolist() == ["category", "city_pop", "gender"]
    recent = next(t for t in tables if "trans_date_trans_time" in t.columns)
    assert recent["trans_num"].tolist() == [target]
    at.button(key=f"fraud_{target}").click()
    at.run()
    assert not at.exception
    assert client.labels[-1] == {"transaction_id": target, "label": "fraud", "note": None}


def test_unusable_config_is_a_friendly_error(monkeypatch, tmp_path):
    monkeypatch.setenv("AEGIS_CONFIG", str(tmp_path / "missing.toml"))
    at = run_page(FakeClient())
    assert not at.exception
    errors = [e.value for e in at.error]
    assert errors and "Config not usable" in errors[0] and "missing.toml" in errors[0]
    assert not at.dataframe
