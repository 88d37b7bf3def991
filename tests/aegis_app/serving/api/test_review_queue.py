"""The review queue's API: alerts by rule (active or shadow matches), by merchant and by a
searched transaction id, card or merchant; many alerts labelled at once, each exactly as
one is (stored, audited, published on aegis.labels)."""

from __future__ import annotations

from dataclasses import asdict

import pytest

from aegis_app.serving.api.scoring import Unavailable
from tests.aegis_app.serving.api.conftest import AUTH, FakePublisher, auth, stored_decision

BLOCKER = {"id": 2, "version": 4, "action": "block", "shadow": False}
SHADOWED = {"id": 3, "version": 1, "action": "review", "shadow": True}


def _ids(client, **params) -> list[str]:
    response = client.get("/v1/alerts", params={"limit": 500, **params}, headers=AUTH)
    assert response.status_code == 200, response.text
    return [a["transaction_id"] for a in response.json()["items"]]


def test_alerts_by_rule_merchant_and_search(make_client, api_store):
    api_store.upsert_decisions(
        [
            stored_decision(1, "block", rules=[BLOCKER, SHADOWED], merchant="m-1", card="c-1"),
            stored_decision(2, "block", rules=[BLOCKER], merchant="m-2", card="c-1"),
            stored_decision(3, "allow", rules=[SHADOWED], merchant="m-1", card="c-3"),
            stored_decision(4, "review", merchant="m-2", card="m-1"),
        ]
    )
    client, _, _ = make_client()
    assert _ids(client, rule=2) == ["2", "1"]
    assert _ids(client, rule=3) == ["1"]  # alerts only, unless `action` says otherwise
    assert _ids(client, rule=3, action=["allow", "review", "block"]) == ["3", "1"]
    assert _ids(client, rule=3, shadow=True, action=["allow", "block"]) == ["3", "1"]
    assert _ids(client, rule=3, shadow=False) == [] and _ids(client, rule=99) == []
    assert _ids(client, merchant="m-2") == ["4", "2"]
    assert _ids(client, q="c-1") == ["2", "1"]  # a card
    assert _ids(client, q="m-1") == ["4", "1"]  # a card of one, the merchant of another
    assert _ids(client, q="3", action="allow") == ["3"]  # a transaction id
    assert _ids(client, q="m-") == []  # exact matches only
    assert _ids(client, q="m-1", merchant="m-1", rule=2) == ["1"]  # every filter applies


def test_many_alerts_labelled_at_once(make_client, api_store):
    api_store.upsert_decisions([stored_decision(i, card=f"c-{i}") for i in (1, 2, 3)])
    client, _, publisher = make_client()
    response = client.post(
        "/v1/alerts/labels",
        json={
            "transaction_ids": ["3", "nope", "1", "3"],
            "label": "fraud",
            "note": "one ring",
            "analyst": "ana",
        },
        headers=auth("analyst"),
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"labelled": ["3", "1"], "not_found": ["nope"], "published": 2}
    # each exactly as POST /v1/alerts/{id}/label: the decision, its history, the audit log
    # and aegis.labels, with the stored decision's card and entity keys
    for tx in ("3", "1"):
        row = api_store.get_decision(tx)
        assert (row["status"], row["label"], row["labelled_by"]) == ("labelled", 1, "ana")
        [history] = api_store.labels_for(tx)
        assert history["note"] == "one ring" and history["source"] == "analyst"
        [entry] = api_store.audit_log(target=f"transaction:{tx}")
        assert entry["actor"] == "analyst:analyst" and entry["action"] == "label"
        assert entry["details"] == {"label": "fraud", "analyst": "ana"}
    assert api_store.get_decision("2")["status"] == "open"
    assert [(x.transaction_id, x.label, x.card) for x in publisher.labels] == [
        ("3", 1, "c-3"),
        ("1", 1, "c-1"),
    ]
    assert publisher.labels[0].entities == {"card": "c-3", "terminal": "7"}
    # the message one label of the same verdict publishes, but for the transaction's own
    single = client.post(
        "/v1/alerts/2/label",
        json={"label": "fraud", "note": "one ring", "analyst": "ana"},
        headers=auth("analyst"),
    )
    assert single.status_code == 200
    bulk_label, single_label = asdict(publisher.labels[0]), asdict(publisher.labels[-1])
    assert single_label.pop("known_at") >= bulk_label.pop("known_at")
    assert bulk_label == {
        **single_label,
        "transaction_id": "3",
        "card": "c-3",
        "entities": {"card": "c-3", "terminal": "7"},
    }
    # the analyst defaults to the token's name, as for one label
    client.post(
        "/v1/alerts/labels",
        json={"transaction_ids": ["2"], "label": "legitimate"},
        headers=auth("analyst"),
    )
    assert api_store.get_decision("2")["labelled_by"] == "analyst"
    assert api_store.get_decision("2")["label"] == 0


@pytest.mark.parametrize(
    "body,field",
    [
        ({"transaction_ids": [], "label": "fraud"}, "transaction_ids"),
        ({"transaction_ids": [str(i) for i in range(501)], "label": "fraud"}, "transaction_ids"),
        ({"label": "fraud"}, "transaction_ids"),
        ({"transaction_ids": "1", "label": "fraud"}, "transaction_ids"),
        ({"transaction_ids": ["1", ""], "label": "fraud"}, "transaction_ids.1"),
        ({"transaction_ids": ["1"], "label": "maybe"}, "label"),
        ({"transaction_ids": ["1"], "label": "fraud", "extra": 1}, "extra"),
        ({"transaction_ids": ["1"], "label": "fraud", "note": "x" * 2001}, "note"),
    ],
)
def test_bad_bulk_labels_are_422_naming_the_field_and_label_nothing(
    make_client, api_store, body, field
):
    api_store.upsert_decisions([stored_decision(1)])
    client, _, publisher = make_client()
    response = client.post("/v1/alerts/labels", json=body, headers=auth("analyst"))
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert api_store.get_decision("1")["status"] == "open" and not publisher.labels


def test_five_hundred_alerts_in_one_request(make_client, api_store):
    api_store.upsert_decisions([stored_decision(i) for i in range(500)])
    client, _, publisher = make_client()
    ids = [str(i) for i in range(500)]
    response = client.post(
        "/v1/alerts/labels",
        json={"transaction_ids": ids, "label": "legitimate"},
        headers=AUTH,
    )
    assert response.status_code == 200, response.text
    assert response.json()["labelled"] == ids and len(publisher.labels) == 500
    assert _ids(client, status="labelled") == ids[::-1]


def test_a_broker_down_mid_way_is_503_and_the_same_request_again_is_safe(make_client, api_store):
    class FailsOnce(FakePublisher):
        """aegis.labels refuses the label of transaction 2, once."""

        failed = False

        async def publish_label(self, label) -> None:
            if label.transaction_id == "2" and not self.failed:
                self.failed = True
                raise Unavailable("broker down")
            await super().publish_label(label)

    api_store.upsert_decisions([stored_decision(i) for i in (1, 2, 3)])
    publisher = FailsOnce()
    client, _, _ = make_client(publisher=publisher)
    body = {"transaction_ids": ["1", "2", "3"], "label": "fraud"}
    down = client.post("/v1/alerts/labels", json=body, headers=AUTH)
    assert down.status_code == 503 and "broker down" in down.json()["detail"]
    assert [x.transaction_id for x in publisher.labels] == ["1"]
    assert api_store.get_decision("3")["status"] == "open"  # not reached
    again = client.post("/v1/alerts/labels", json=body, headers=AUTH)
    assert again.json() == {"labelled": ["1", "2", "3"], "not_found": [], "published": 3}
    assert [x.transaction_id for x in publisher.labels] == ["1", "1", "2", "3"]
