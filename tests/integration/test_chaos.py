"""A short `aegis chaos`: a few thousand transactions with ~1,000 poison records mixed in,
one worker SIGKILLed mid-stream and started again. Nothing lost, nothing doubled after
de-duplication, every poison record dead-lettered with its reason, no worker crashed."""

from __future__ import annotations

import pytest

from aegis_app.harness import chaos

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def chaos_model_dir(tmp_path_factory):
    """Shared with test_failover.py through the session's base temp directory."""
    model_dir = tmp_path_factory.getbasetemp() / "chaos-model"
    chaos.ensure_model(model_dir, customers=400, days=35)  # small: quick to train
    return model_dir


def test_poison_records_are_all_refused_by_the_decoder():
    records = chaos.poison_records(2000, seed=1)
    assert len(records) == 2000
    assert {r.kind for r in records} == set(chaos.POISON_KINDS)
    assert all(r.reason for r in records)


def test_short_chaos_kill_and_restart(tmp_path, chaos_model_dir):
    result = chaos.run(
        chaos.ChaosConfig(
            transactions=3000,
            poison=1000,
            seconds=25,
            faults=("kill", "restart"),
            model_dir=chaos_model_dir,
            root=tmp_path,
            card_sample=40,
            settle_timeout=150,
        )
    )
    summary = {k: v for k, v in result.items() if k not in ("events", "poison_kinds")}
    assert result["sent"] == 3000
    assert result["doubled_after_dedup"] == 0, summary
    assert result["conflicting_duplicates"] == 0, summary
    assert result["unexpected_decisions"] == 0, summary
    assert result["poison_sent"] == 1000
    assert result["dead_lettered"] == 1000, summary
    assert result["poison_not_dead_lettered"] == 0, summary
    assert result["dead_letter_payload_mismatches"] == 0, summary
    assert result["workers_crashed"] == [] and result["crash_log_lines"] == {}, summary
    assert result["workers_alive"] == 2, summary
    assert any(e["event"] == "worker SIGKILLed" for e in result["events"])
    assert any(e["event"] == "restarted worker healthy" for e in result["events"])
    # A killed worker that rejoins within seconds used to cost a block of transactions on the
    # survivor's partitions (docs/OPERATIONS.md "Loss on a fast rejoin", aegis_app/seek_gate).
    assert result["lost"] == 0, summary
    assert result["feature_mismatches"] == 0, summary
    assert result["card_state"]["mismatched"] == 0, summary
    if result["store_checked"]:
        assert result["store"]["missing"] == 0 and result["store"]["doubled"] == 0, summary
