"""dashboard.client against an httpx.MockTransport speaking the /v1 API."""

from __future__ import annotations

import json
from datetime import date

import httpx
import pytest

from dashboard.client import (
    AegisClient,
    ApiError,
    ApiNotFound,
    ApiRejected,
    ApiUnauthorized,
    ApiUnavailable,
    RuleSpec,
)
from tests.dashboard.sample_data import decisions


def make(handler, token: str | None = "s3cret") -> AegisClient:
    return AegisClient("http://api.test/", token, transport=httpx.MockTransport(handler))


def test_alerts_sends_filters_and_token_and_reads_a_cursor_page():
    seen: list[httpx.Request] = []
    rows = decisions(3)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"items": rows, "next_cursor": "abc", "limit": 3})

    page = make(handler).alerts(
        action="block", status="open", min_score=0.5, since="2026-11-24T20:00:00+00:00", limit=3
    )
    request = seen[0]
    assert request.url.path == "/v1/alerts"
    assert request.headers["Authorization"] == "Bearer s3cret"
    assert request.url.params["action"] == "block"
    assert request.url.params["status"] == "open"
    assert request.url.params["min_score"] == "0.5"
    assert request.url.params["since"] == "2026-11-24T20:00:00+00:00"  # '+' encoded, not space
    assert "max_score" not in request.url.params
    assert page == {"items": rows, "total": None, "more": True}


def test_alerts_with_a_total():
    def handler(request):
        return httpx.Response(200, json={"items": [{"transaction_id": 1}], "total": 1})

    assert make(handler).alerts() == {"items": [{"transaction_id": 1}], "total": 1, "more": False}


def test_label_posts_the_verdict():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"alert": {"transaction_id": 17}, "published": True})

    make(handler).label(17, "fraud", note="phone call", analyst="ana")
    assert seen[0].method == "POST"
    assert seen[0].url.path == "/v1/alerts/17/label"
    assert json.loads(seen[0].content) == {"label": "fraud", "note": "phone call", "analyst": "ana"}


def test_label_without_token_explains_instead_of_calling():
    def handler(request):  # pragma: no cover - must not be called
        raise AssertionError("no request expected")

    with pytest.raises(ApiUnauthorized, match="--token"):
        make(handler, token=None).label(17, "fraud")
    with pytest.raises(ValueError):
        make(handler).label(17, "maybe")


@pytest.mark.parametrize(
    ("status", "error", "text"),
    [
        (401, ApiUnauthorized, "refused"),
        (403, ApiUnauthorized, "refused"),
        (404, ApiNotFound, "No alert 5"),
        (422, ApiError, "limit: too big"),
        (503, ApiError, "HTTP 503"),
    ],
)
def test_http_errors_become_messages(status, error, text):
    def handler(request):
        return httpx.Response(status, json={"detail": "limit: too big", "field": "limit"})

    with pytest.raises(error) as caught:
        make(handler).alert(5)
    assert text in caught.value.message
    assert caught.value.status == status


def test_unreachable_and_timeout():
    def refused(request):
        raise httpx.ConnectError("refused", request=request)

    def slow(request):
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(ApiUnavailable, match="Cannot reach the Aegis API at http://api.test"):
        make(refused).models()
    with pytest.raises(ApiUnavailable, match="did not answer in time"):
        make(slow).models()


def test_not_json_is_explained():
    def handler(request):
        return httpx.Response(200, text="<html>streamlit</html>")

    with pytest.raises(ApiError, match="did not answer with JSON"):
        make(handler).models()


def test_missing_token_on_reads_says_none_was_given():
    def handler(request):
        assert "Authorization" not in request.headers
        return httpx.Response(401, json={"detail": "missing or wrong bearer token"})

    with pytest.raises(ApiUnauthorized, match="none was given"):
        make(handler, token=None).alerts()


def test_metrics_text_and_card():
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/metrics":
            return httpx.Response(200, text='aegis_decisions_total{action="allow"} 3.0\n')
        return httpx.Response(200, json={"card_id": 5, "features": None, "recent_decisions": []})

    client = make(handler)
    assert "aegis_decisions_total" in client.metrics_text()
    assert client.card(5)["card_id"] == 5


def test_ids_are_one_path_segment():
    """Ids are the user's text: a "/", "#" or "?" in one must not change the URL's shape."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.raw_path.decode())
        return httpx.Response(200, json={"alert": {}, "published": True})

    client = make(handler)
    client.card("4613 31/4#9")
    client.alert("a?b")
    client.label("tx/1", "fraud")
    assert seen == [
        "/v1/cards/4613%2031%2F4%239",
        "/v1/alerts/a%3Fb",
        "/v1/alerts/tx%2F1/label",
    ]


def test_alerts_sends_the_review_queue_filters():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"items": []})

    client = make(handler)
    client.alerts(rule=3, shadow=True, merchant="m 1", q="tx#1", card="c/1")
    params = seen[0].url.params
    assert (params["rule"], params["shadow"], params["merchant"]) == ("3", "true", "m 1")
    assert (params["q"], params["card"]) == ("tx#1", "c/1")
    client.alerts(rule=3, shadow=False)
    assert seen[1].url.params["shadow"] == "false"
    client.alerts()
    assert set(seen[2].url.params) == {"limit", "offset"}


def test_rule_reads_and_changes_reach_their_routes():
    seen: list[tuple[str, str, dict | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        """Notes (method, path, the JSON body or else the query parameters)."""
        sent = json.loads(request.content) if request.content else dict(request.url.params)
        seen.append((request.method, request.url.path, sent or None))
        return httpx.Response(200, json={"items": [{"rule_id": 1}], "rule_id": 1})

    client = make(handler)
    assert client.list_rules(state="shadow") == [{"rule_id": 1}]
    client.get_rule(1)
    client.rule_hits(1, start=date(2026, 11, 1), end="2026-11-08")
    client.lists()
    client.audit(target="rule:1", limit=5)
    client.create_rule(RuleSpec("amount > 5", "review", "big", priority=3, note="why"))
    client.edit_rule(1, RuleSpec("amount > 6", "block", "bigger"))
    client.backtest_rule(1, start="2026-11-01")
    client.shadow_rule(1, note="watch")
    client.activate_rule(1, confirm=True, note="go")
    client.retire_rule(1)
    client.label_many([5, "6"], "legitimate", note="known")
    rule = {"expression": "amount > 5", "action": "review", "priority": 3, "reason": "big"}
    assert seen == [
        ("GET", "/v1/rules", {"state": "shadow"}),
        ("GET", "/v1/rules/1", None),
        ("GET", "/v1/rules/1/hits", {"start": "2026-11-01", "end": "2026-11-08"}),
        ("GET", "/v1/lists", None),
        ("GET", "/v1/audit", {"target": "rule:1", "limit": "5"}),
        ("POST", "/v1/rules", {**rule, "note": "why"}),
        (
            "PUT",
            "/v1/rules/1",
            {
                "expression": "amount > 6",
                "action": "block",
                "priority": 0,
                "reason": "bigger",
                "note": None,
            },
        ),
        ("POST", "/v1/rules/1/backtest", {"start": "2026-11-01"}),
        ("POST", "/v1/rules/1/shadow", {"note": "watch"}),
        ("POST", "/v1/rules/1/activate", {"note": "go", "confirm": True}),
        ("POST", "/v1/rules/1/retire", {"note": None}),
        (
            "POST",
            "/v1/alerts/labels",
            {
                "transaction_ids": ["5", "6"],
                "label": "legitimate",
                "note": "known",
                "analyst": None,
            },
        ),
    ]


def test_changes_without_a_token_are_explained_instead_of_sent():
    def handler(request):  # pragma: no cover - must not be called
        raise AssertionError("no request expected")

    client = make(handler, token=None)
    for change in (
        lambda: client.label_many(["1"], "fraud"),
        lambda: client.create_rule(RuleSpec("amount > 5", "review", "big")),
        lambda: client.shadow_rule(1),
        lambda: client.activate_rule(1, confirm=True),
    ):
        with pytest.raises(ApiUnauthorized, match="--token"):
            change()
    with pytest.raises(ValueError):
        make(handler).label_many(["1"], "maybe")


@pytest.mark.parametrize("status", [400, 409, 422])
def test_a_refusal_carries_the_apis_answer(status):
    answer = {
        "detail": "the backtest adds 3.0 alerts a day",
        "field": "confirm",
        "added_alerts_per_day": 3.0,
        "budget": 2.0,
    }

    def handler(request):
        return httpx.Response(status, json=answer)

    with pytest.raises(ApiRejected) as caught:
        make(handler).activate_rule(4)
    error = caught.value
    assert error.status == status and error.body == answer
    assert error.field == "confirm" and error.detail == answer["detail"]
    assert answer["detail"] in error.message and isinstance(error, ApiError)


def test_other_errors_keep_the_body_when_there_is_one():
    def handler(request):
        if request.url.path == "/v1/rules/9":
            return httpx.Response(404, json={"detail": "no rule 9", "field": None})
        return httpx.Response(502, text="<html>bad gateway</html>")

    with pytest.raises(ApiNotFound, match="No rule 9 found") as caught:
        make(handler).get_rule(9)
    assert caught.value.body == {"detail": "no rule 9", "field": None}
    with pytest.raises(ApiError) as caught:
        make(handler).lists()
    assert caught.value.status == 502 and caught.value.body is None
    assert not isinstance(caught.value, ApiRejected)
