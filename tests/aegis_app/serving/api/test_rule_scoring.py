"""The API scores with the published rules too: what aegis.rules offers is applied before
its next batch, its decisions name the rules, and its /metrics counts their hits."""

from __future__ import annotations

from tests.aegis_app.serving.api.conftest import AUTH
from tests.aegis_app.serving.api.test_app import TX
from tests.models.rules.test_live import rule


def test_offered_rules_decide_the_apis_next_transactions(make_client):
    client, _, _ = make_client()
    first = client.post("/v1/transactions", json=TX, headers=AUTH).json()
    assert first["rules"] == [] and first["rule_errors"] == []

    scorer = client.app.state.scorer
    scorer.rules_changed(
        [
            rule(1, 2, "active", "amount > 100.0", "block"),
            rule(2, 1, "shadow", "amount > 0.0", "review"),
            rule(3, 1, "active", "no_such_field > 1.0"),  # skipped: not this config's
        ]
    )
    body = client.post("/v1/transactions", json={**TX, "TRANSACTION_ID": 43}, headers=AUTH)
    decision = body.json()
    assert decision["action"] == "block" and decision["reasons"][0] == "RULE 1 v2: why 1"
    assert decision["rules"] == [
        {"id": 1, "version": 2, "action": "block", "shadow": False},
        {"id": 2, "version": 1, "action": "review", "shadow": True},
    ]
    assert [s.rule_id for s in scorer.rules.skipped] == [3]
    metrics = client.get("/metrics", headers=AUTH).text
    assert 'aegis_api_rule_hits_total{mode="active",rule="1",version="2"} 1.0' in metrics
    assert 'aegis_api_rule_hits_total{mode="shadow",rule="2",version="1"} 1.0' in metrics
