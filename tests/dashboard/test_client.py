"""dashboard.client against an httpx.MockTransport speaking the /v1 API."""

from __future__ import annotations

import json

import httpx
import pytest

from dashboard.client import (
    AegisClient,
    ApiError,
    ApiNotFound,
    ApiUnauthorized,
    ApiUnavailable,
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
