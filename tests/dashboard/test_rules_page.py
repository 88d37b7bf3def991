"""The Rules view under Streamlit's AppTest, on the real API application and store (in
process): write a rule (a typo refused inline, with its position), backtest it, shadow it,
activate it past the alert-budget confirmation; and the queue's rule filter and search."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.client import AegisClient
from dashboard.views.common import CLIENT_KEY
from tests.dashboard.sample_data import decisions

TOKEN = "rules-page-token"
pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")


@pytest.fixture
def api(tmp_path) -> Iterator[tuple[AegisClient, object, list]]:
    """The page's client on the real API (budget: 1 new alert a day), with 30 allowed
    decisions of 80.0 beside the seeded alerts."""
    from tests.dashboard.api_stack import build_api, page_client

    app, store, _metrics, published, _ = build_api(tmp_path, TOKEN, rule_alert_budget=1.0)
    allowed = decisions(30, seed=5)
    for i, row in enumerate(allowed):
        row.update(transaction_id=f"97{i:04d}", action="allow", score=0.2, reasons=[], amount=80.0)
    store.upsert_decisions(allowed)
    with page_client(app, TOKEN) as client:
        yield client, store, published
    store.close()


def _rules_view() -> None:
    from dashboard.views import rules
    from dashboard.views.common import get_client

    rules.render(get_client())


def _page(client: AegisClient) -> AppTest:
    at = AppTest.from_function(_rules_view, default_timeout=30)
    at.session_state[CLIENT_KEY] = client
    return at.run()


def _click(at: AppTest, label: str) -> AppTest:
    return next(b for b in at.button if b.label == label).click().run()


def _texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [s.value for s in at.success]
    parts += [w.value for w in at.warning] + [c.value for c in at.caption]
    return "\n".join(str(p) for p in parts)


def test_a_rule_from_the_editor_to_active(api):
    client, _store, published = api
    at = _page(client)
    assert not at.exception and "No rules yet" in str([i.value for i in at.info])
    at.text_area(key="rule_expression_new").input("amout > 50")
    at.text_input(key="rule_reason_new").input("Large amount for this card")
    at = _click(at, "Save draft")
    assert not at.exception
    (error,) = at.error
    assert "line 1, column 1" in error.value and "amount" in error.value
    assert at.code and at.code[0].value == "amout > 50\n^"  # the caret under the column
    assert client.list_rules() == []

    at.text_area(key="rule_expression_new").input("amount > 50")
    at = _click(at, "Save draft")
    assert not at.exception and not at.error
    assert "Rule 1 saved as draft version 1" in _texts(at)
    assert at.selectbox(key="rule_pick").value == 1

    at = _click(at, "Run backtest")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Hits"] != "0" and float(metrics["New alerts / day"]) == 30.0

    at = _click(at, "Shadow")
    assert "Rule 1 is now **shadow**" in _texts(at)
    at = _click(at, "Activate")
    assert "Over the alert budget" in _texts(at) and "30.0 alerts a day" in _texts(at)
    assert client.get_rule(1)["state"] == "shadow"
    at = _click(at, "Activate anyway")
    assert not at.exception and "Rule 1 is now **active**" in _texts(at)
    rule = client.get_rule(1)
    assert [v["state"] for v in rule["history"]] == ["draft", "shadow", "active"]
    assert [kind for kind, _ in published] == ["rule", "rule"]  # shadow, then active
    (table,) = [d.value for d in at.dataframe if "State" in d.value.columns][:1]
    assert table["State"].tolist() == ["active"]
    names = next(d.value for d in at.dataframe if "Kind" in d.value.columns)
    assert {"Name": "TX_AMOUNT", "Kind": "number"} in names.to_dict("records")  # handbook


def test_an_active_rule_is_not_edited_in_place(api):
    client, _store, _ = api
    from dashboard.client import RuleSpec

    rule = client.create_rule(RuleSpec("amount > 50", "review", "big"))
    client.shadow_rule(rule["rule_id"])
    client.activate_rule(rule["rule_id"], confirm=True)
    at = _page(client)
    save = next(b for b in at.button if b.label == "Save draft")
    assert save.disabled
    assert "retire it first" in _texts(at)
    labels = {b.label: b.disabled for b in at.button}
    assert labels["Retire"] is False and labels["Activate"] is True


def test_lists_are_written_and_edited_from_the_rules_view(api):
    client, _store, published = api
    at = _page(client)
    assert "No lists yet" in _texts(at)
    name_box = next(t for t in at.text_input if t.label == "Name")
    name_box.input("Bad-Name")
    next(t for t in at.text_area if t.label == "Items, one per line").input("4242\n\n 17 \n")
    at = _click(at, "Save list")
    (error,) = at.error
    assert "The API rejected the request" in error.value and "name" in error.value, error.value
    assert client.lists() == []
    name_box = next(t for t in at.text_input if t.label == "Name")
    name_box.input("watched_cards")
    at = _click(at, "Save list")
    assert not at.exception and "List watched_cards is version 1 (2 items)" in _texts(at)
    assert client.get_list("watched_cards")["items"] == ["17", "4242"]
    assert at.selectbox(key="list_pick").value == "watched_cards"
    lists = next(d.value for d in at.dataframe if "List" in d.value.columns)
    assert lists.to_dict("records")[0]["List"] == "lists.watched_cards"
    next(t for t in at.text_area if t.label == "Items, one per line").input("17\n99")
    at = _click(at, "Save list")
    assert "List watched_cards is version 2 (2 items)" in _texts(at)
    assert client.get_list("watched_cards")["items"] == ["17", "99"]
    assert [kind for kind, _ in published] == ["rule", "rule"]  # both versions announced
