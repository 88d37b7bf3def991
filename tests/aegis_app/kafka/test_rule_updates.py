"""aegis.rules: the API's publisher creates it compacted with one partition and puts each
rule or list version under its key, as JSON a worker decodes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from aegis_app.core.settings import RULES_TOPIC
from aegis_app.harness.stack import read_topic
from aegis_app.kafka import clients
from aegis_app.kafka.rule_updates import decode, list_message, rule_message
from aegis_app.serving.api.scoring import KafkaPublisher

AT = datetime(2027, 1, 20, 9, 30, tzinfo=UTC)
VERSION = {
    "rule_id": 3,
    "version": 2,
    "state": "shadow",
    "expression": "card in lists.vip_cards",
    "action": "allow",
    "priority": 5,
    "reason": "known good customers",
    "changed_by": "analyst:ana",
    "changed_at": AT,
    "note": None,
}
LIST = {"name": "vip_cards", "version": 1, "items": ["1", "2"], "changed_by": "admin:cy"}


def test_messages_are_the_versions_as_json():
    key, value = rule_message(VERSION, ["vip_cards"])
    assert key == b"rule:3"
    assert decode(value) == {
        "kind": "rule",
        **VERSION,
        "changed_at": "2027-01-20T09:30:00+00:00",
        "lists": ["vip_cards"],
    }
    key, value = list_message({**LIST, "changed_at": AT, "note": "bank"})
    assert key == b"list:vip_cards" and decode(value)["items"] == ["1", "2"]
    assert decode(b"not json") is None and decode(b'{"kind": "other"}') is None


def test_the_publisher_creates_a_compacted_topic(broker):
    publisher = KafkaPublisher(broker.url)

    async def publish() -> dict:
        await publisher.start()
        try:
            await publisher.publish_rule_change(
                *list_message({**LIST, "changed_at": AT, "note": None})
            )
            await publisher.publish_rule_change(*rule_message(VERSION, ["vip_cards"]))
        finally:
            await publisher.stop()
        admin = clients.admin_client(broker.url)
        await admin.start()
        try:
            [described] = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, RULES_TOPIC)]
            )
            metadata = await admin.describe_topics([RULES_TOPIC])
        finally:
            await admin.close()
        return {"configs": described, "partitions": len(metadata[0]["partitions"])}

    found = asyncio.run(publish())
    assert found["partitions"] == 1
    assert "cleanup.policy', config_value='compact'" in str(found["configs"])
    records = read_topic(broker.url, RULES_TOPIC, lambda r: len(r) >= 2, timeout=10)
    assert [r.key for r in records] == [b"list:vip_cards", b"rule:3"]
    assert decode(records[1].value)["state"] == "shadow"
