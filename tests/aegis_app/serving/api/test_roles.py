"""Every route of the API checks its role: 401 without a valid token, 403 with a role that
may not, and through for one that may. The table below names every route; a new route
fails this test until it is added."""

from __future__ import annotations

import pytest

from aegis_app.serving.api.auth import TokenError, parse_tokens
from tests.aegis_app.serving.api.conftest import ROLE_TOKENS, auth

ANYONE = None  # health checks: no token needed
READ = {"read", "analyst", "admin"}
SERVICE = {"service", "admin"}
ANALYST = {"analyst", "admin"}
ADMIN = {"admin"}
ROUTES = {
    ("POST", "/v1/transactions"): SERVICE,
    ("GET", "/v1/cards/{card_id}"): READ,
    ("GET", "/v1/alerts"): READ,
    ("GET", "/v1/alerts/{transaction_id}"): READ,
    ("POST", "/v1/alerts/{transaction_id}/label"): ANALYST,
    ("POST", "/v1/alerts/labels"): ANALYST,
    ("GET", "/v1/models"): READ,
    ("GET", "/v1/drift"): READ,
    ("GET", "/metrics"): READ,
    ("GET", "/healthz"): ANYONE,
    ("GET", "/readyz"): ANYONE,
    ("GET", "/v1/rules"): READ,
    ("POST", "/v1/rules"): ANALYST,
    ("GET", "/v1/rules/{rule_id}"): READ,
    ("GET", "/v1/rules/{rule_id}/hits"): READ,
    ("GET", "/v1/rules/names"): READ,
    ("PUT", "/v1/rules/{rule_id}"): ANALYST,
    ("POST", "/v1/rules/{rule_id}/backtest"): ANALYST,
    ("POST", "/v1/rules/{rule_id}/shadow"): ANALYST,
    ("POST", "/v1/rules/{rule_id}/activate"): ADMIN,
    ("POST", "/v1/rules/{rule_id}/retire"): ADMIN,
    ("GET", "/v1/lists"): READ,
    ("GET", "/v1/lists/{name}"): READ,
    ("PUT", "/v1/lists/{name}"): ADMIN,
    ("GET", "/v1/audit"): READ,
}
PARAMETERS = {"card_id": "1", "transaction_id": "1", "rule_id": "1", "name": "vip_cards"}


def _routes(app) -> list[tuple[str, str]]:
    """Every (method, path) of the app's OpenAPI document (included routers too)."""
    paths = app.openapi()["paths"]
    return sorted((method.upper(), path) for path, item in paths.items() for method in item)


def test_the_table_names_every_route(make_client):
    client, _, _ = make_client()
    assert _routes(client.app) == sorted(ROUTES)


@pytest.mark.parametrize("method,path", sorted(ROUTES), ids=lambda x: str(x))
def test_each_role_gets_through_only_where_it_may(make_client, method, path):
    client, _, publisher = make_client()
    url = path.format(**PARAMETERS)
    allowed = ROUTES[(method, path)]
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
        response = client.request(method, url, headers=headers, json={})
        if allowed is ANYONE:
            assert response.status_code not in (401, 403), (headers, response.text)
        else:
            assert response.status_code == 401, (headers, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
    for role in ROLE_TOKENS:
        response = client.request(method, url, headers=auth(role), json={})
        if allowed is ANYONE or role in allowed:
            assert response.status_code not in (401, 403), (role, response.text)
        else:
            assert response.status_code == 403, (role, response.text)
            assert response.json()["detail"].startswith(f"the {role} role may not")
    assert not publisher.transactions and not publisher.rule_changes


def test_open_reads_open_only_the_reads(make_client):
    client, _, _ = make_client(open_reads=True)
    for (method, path), allowed in ROUTES.items():
        response = client.request(method, path.format(**PARAMETERS), json={})
        if allowed is READ or allowed is ANYONE:
            assert response.status_code not in (401, 403), (method, path)
        else:
            assert response.status_code == 401, (method, path)


def test_named_tokens_and_their_errors(make_client):
    [(token, who)] = parse_tokens(" analyst:ana:s3cr:et ,")
    assert token == "s3cr:et" and who.actor == "analyst:ana"
    with pytest.raises(TokenError, match="entry 1: expected role:name:token"):
        parse_tokens("analyst:ana")
    with pytest.raises(TokenError, match="role 'boss' is not one of"):
        parse_tokens("boss:ana:x")
    client, _, _ = make_client(named_tokens="analyst:ana:ana-token-0123")
    response = client.post(
        "/v1/rules",
        headers={"Authorization": "Bearer ana-token-0123"},
        json={"expression": "TX_AMOUNT > 100", "action": "review", "reason": "big"},
    )
    assert response.status_code == 201 and response.json()["changed_by"] == "analyst:ana"
