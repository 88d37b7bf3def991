"""Rules reach a running worker live, on the real embedded broker with a real worker.

Transactions stream at a steady rate. Before the stream a shadow rule is published, mid-
stream an active rule that blocks everything, later its retirement, and a rule the
worker's config cannot compile; each exactly as the API publishes it (its publisher and
aegis_app.kafka.rule_updates). Every transaction must get exactly one decision; the
decisions before the active rule are the model's; every decision made more than
SWITCH_WITHIN_S after the publish carries the rule until its retirement, and none does
SWITCH_WITHIN_S after that; the shadow rule is recorded in decisions and never changes
one; the rule the worker cannot compile is skipped, and the worker goes on; an active rule
that fails at run time on some records (a division by zero) is skipped for those records,
named in their `rule_errors` and counted, and the model decides them.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime

import httpx
import pytest

from aegis_app.core import files
from aegis_app.core.settings import DECISIONS_TOPIC
from aegis_app.harness import simulator
from aegis_app.harness.stack import read_topic
from aegis_app.ingest.replay import replay
from aegis_app.kafka.rule_updates import rule_message
from aegis_app.serving.api.scoring import KafkaPublisher
from models.lifecycle import registry
from tests.integration.running import own_broker, running_worker
from tests.integration.test_hot_swap import V1, _register_versions, _wait_health

pytestmark = pytest.mark.integration

TRANSACTIONS = 3000
RATE = 150.0  # per second: about 20 s of stream
ACTIVATE_AT_S = 2.0  # seconds into the stream
RETIRE_AT_S = 10.0
SWITCH_WITHIN_S = 5.0  # from the acknowledged publish to every decision following it
SHADOW, BLOCKER, UNKNOWN, ERRING = 1, 2, 3, 4
# Divides by zero for a card's first transaction of the day (CUSTOMER_ID_NB_TX_1DAY_WINDOW
# counts it: 1), never true otherwise: an active rule that fails at run time on some records.
ERRING_EXPRESSION = "int(TX_AMOUNT) / int(CUSTOMER_ID_NB_TX_1DAY_WINDOW - 1) > 100000000"
REASON = "everything is blocked (test)"


def _version(rule_id: int, version: int, state: str, expression: str, action: str) -> dict:
    """A rule version as the store holds it (aegis_app/serving/store/rules.py)."""
    return {
        "rule_id": rule_id,
        "version": version,
        "state": state,
        "expression": expression,
        "action": action,
        "priority": 100,
        "reason": REASON if rule_id == BLOCKER else f"rule {rule_id}",
        "changed_by": "analyst:test",
        "changed_at": datetime.now(UTC),
        "note": None,
    }


async def _publish(publisher: KafkaPublisher, version: dict) -> tuple[float, float]:
    """Publish one rule version as the API does; (start, acknowledged) wall-clock times."""
    started = time.time()
    await publisher.publish_rule_change(*rule_message(version, []))
    return started, time.time()


async def _stream_with_rules(broker_url: str, frame) -> dict:
    publisher = KafkaPublisher(broker_url)
    await publisher.start()

    async def changes() -> dict:
        begin = time.monotonic()
        await asyncio.sleep(ACTIVATE_AT_S)
        active = await _publish(publisher, _version(BLOCKER, 2, "active", "amount >= 0.0", "block"))
        # A rule reading a name the worker's config lacks: skipped there, nothing stops.
        unknown = _version(UNKNOWN, 2, "active", "no_such_field > 1.0", "block")
        await _publish(publisher, unknown)
        await asyncio.sleep(max(0.0, RETIRE_AT_S - (time.monotonic() - begin)))
        retired = await _publish(
            publisher, _version(BLOCKER, 3, "retired", "amount >= 0.0", "block")
        )
        return {"active": active, "retired": retired}

    try:
        shadow = await _publish(publisher, _version(SHADOW, 2, "shadow", "amount > 0.0", "block"))
        await _publish(publisher, _version(ERRING, 1, "active", ERRING_EXPRESSION, "block"))
        summary, times = await asyncio.gather(
            replay(
                files.iter_frame(frame),
                broker_url,
                rate=RATE,
                label_delay_days=None,
                progress=False,
            ),
            changes(),
        )
    finally:
        await publisher.stop()
    assert summary.sent == len(frame)
    return {**times, "shadow": shadow}


def _model_action(score: float, thresholds: dict) -> str:
    if score >= thresholds["block"]:
        return "block"
    return "review" if score >= thresholds["review"] else "allow"


def test_rules_published_mid_stream_change_decisions_within_seconds(tmp_path):
    model_dir = tmp_path / "models"
    _register_versions(model_dir)
    thresholds = registry.load(model_dir).thresholds
    frame = simulator.generate(customers=200, terminals=400, days=9, seed=11).head(TRANSACTIONS)
    expected = set(frame["TRANSACTION_ID"].astype(str))
    assert len(expected) == TRANSACTIONS

    # Ready once /health/ answers 200: the model loaded and the rules read.
    with (
        own_broker(tmp_path) as broker,
        running_worker(broker, tmp_path, model_dir) as worker,
    ):
        web = worker.web
        health = _wait_health(web, lambda h: h["rules"]["listener"] == "listening", timeout=30)
        assert health["model_version"] == V1 and health["rules"]["ready"]

        times = asyncio.run(_stream_with_rules(broker.url, frame))
        health = _wait_health(
            web, lambda h: h["counts"].get("scored", 0) >= TRANSACTIONS, timeout=60
        )
        decisions = read_topic(
            broker.url, DECISIONS_TOPIC, lambda r: len(r) >= TRANSACTIONS, timeout=60
        )
        metrics = httpx.get(f"{web}/metrics", timeout=10).text
        assert worker.alive, worker.log_tail()

    by_id: dict[str, dict] = {}
    for record in decisions:
        decision = json.loads(record.value)
        assert decision["transaction_id"] not in by_id, f"decided twice: {decision}"
        by_id[decision["transaction_id"]] = decision
    assert set(by_id) == expected
    assert health["counts"]["scored"] == TRANSACTIONS

    def at(decision: dict) -> float:
        return datetime.fromisoformat(decision["decided_at"]).timestamp()

    def hits(decision: dict, rule_id: int) -> list[dict]:
        return [hit for hit in decision["rules"] if hit["id"] == rule_id]

    active_start, active_end = times["active"]
    retire_start, retire_end = times["retired"]
    before = [d for d in by_id.values() if at(d) < active_start]
    during = [d for d in by_id.values() if active_end + SWITCH_WITHIN_S < at(d) < retire_start]
    after = [d for d in by_id.values() if at(d) > retire_end + SWITCH_WITHIN_S]
    assert len(before) > 100 and len(during) > 100 and len(after) > 100

    # Before the active rule: the model's decisions; the shadow rule recorded, not deciding.
    for decision in before:
        assert not hits(decision, BLOCKER)
        assert decision["action"] == _model_action(decision["score"], thresholds)
        assert not any(reason.startswith("RULE") for reason in decision["reasons"])
    # Within seconds of the publish, and until the retirement: the rule decides, named.
    for decision in during:
        assert hits(decision, BLOCKER) == [
            {"id": BLOCKER, "version": 2, "action": "block", "shadow": False}
        ]
        assert decision["action"] == "block"
        assert decision["reasons"][0] == f"RULE {BLOCKER} v2: {REASON}"
    # No decision carried it before its publish, and none after its retirement took hold.
    assert all(not hits(d, BLOCKER) for d in after)
    assert all(d["action"] == _model_action(d["score"], thresholds) for d in after)
    # The shadow rule: on every decision after it was read, never changing an action.
    shadow_end = times["shadow"][1]
    shadowed = [d for d in by_id.values() if at(d) > shadow_end + SWITCH_WITHIN_S]
    assert shadowed and all(
        hits(d, SHADOW) == [{"id": SHADOW, "version": 2, "action": "block", "shadow": True}]
        for d in shadowed
    )
    # The rule the worker cannot compile was skipped; it never decided anything.
    assert all(not hits(d, UNKNOWN) for d in by_id.values())
    assert [s["id"] for s in health["rules"]["skipped"]] == [UNKNOWN]
    assert "no_such_field" in health["rules"]["skipped"][0]["error"]
    # The worker counts each rule's hits, active and shadow apart.
    blocked = sum(1 for d in by_id.values() if hits(d, BLOCKER))
    assert f'aegis_rule_hits_total{{mode="active",rule="2",version="2"}} {blocked}.0' in metrics
    shadow_hits = sum(1 for d in by_id.values() if hits(d, SHADOW))
    assert f'aegis_rule_hits_total{{mode="shadow",rule="1",version="2"}} {shadow_hits}.0' in (
        metrics
    )
    assert 'aegis_rule_skipped{rule="3",version="2"} 1.0' in metrics
    # The rule that fails on a card's first transaction of the day: skipped for exactly
    # those, named in their rule_errors, counted; the model (or the blocker) decided them.
    first_of_day = {
        d["transaction_id"]
        for d in shadowed
        if d["features"]["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] == 1.0
    }
    erred = {
        d["transaction_id"]
        for d in by_id.values()
        if [(e["id"], e["version"]) for e in d.get("rule_errors", [])] == [(ERRING, 1)]
    }
    assert first_of_day and first_of_day <= erred
    assert all(not hits(d, ERRING) for d in by_id.values())
    for decision in (by_id[tx] for tx in erred):
        assert "division by zero" in decision["rule_errors"][0]["error"]
        assert decision["features"]["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] == 1.0
        if not hits(decision, BLOCKER):
            assert decision["action"] == _model_action(decision["score"], thresholds)
    assert f'aegis_rule_errors_total{{rule="4",version="1"}} {len(erred)}.0' in metrics
