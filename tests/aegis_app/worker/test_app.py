"""The worker app's consumer-group timeouts: their defaults, their AEGIS_* variables, and
the combinations refused before a worker starts (docs/OPERATIONS.md "Failover")."""

from __future__ import annotations

import pytest

from aegis_app.core.settings import Settings
from aegis_app.kafka import admin
from aegis_app.worker.app import create_app, group_timeouts, session_timeout
from aegis_app.worker.run import with_session_timeout


def test_the_defaults_move_a_dead_workers_partitions_in_seconds(tmp_path):
    app = create_app(Settings(data_dir=tmp_path / "state"))
    assert app.conf.broker_session_timeout == 4.0
    assert app.conf.broker_heartbeat_interval == 1.0
    assert app.conf.broker_rebalance_timeout == 60.0


def test_each_timeout_has_its_own_variable(monkeypatch):
    monkeypatch.setenv("AEGIS_SESSION_TIMEOUT_S", "10")
    monkeypatch.setenv("AEGIS_HEARTBEAT_INTERVAL_S", "2.5")
    monkeypatch.setenv("AEGIS_REBALANCE_TIMEOUT_S", "6")
    assert group_timeouts(Settings.from_env()) == {
        "broker_session_timeout": 10.0,
        "broker_heartbeat_interval": 2.5,
        "broker_rebalance_timeout": 6.0,
    }


def test_the_rebalance_timeout_no_longer_sets_the_session():
    timeouts = group_timeouts(Settings(rebalance_timeout_s=6.0))
    assert timeouts["broker_session_timeout"] == 4.0


@pytest.mark.parametrize(
    "changes",
    [
        {"heartbeat_interval_s": 4.0},  # not below the session timeout
        {"heartbeat_interval_s": 0.0},
        {"session_timeout_s": 1.0, "heartbeat_interval_s": 1.5},
        {"rebalance_timeout_s": 0.0},
    ],
)
def test_timeouts_that_cannot_work_are_refused(changes):
    with pytest.raises(ValueError, match="AEGIS_"):
        group_timeouts(Settings().with_(**changes))


def test_an_unset_session_timeout_takes_the_brokers_minimum_when_longer():
    assert session_timeout(Settings()) == 4.0
    assert session_timeout(Settings(), broker_min_s=0.5, broker_max_s=1800) == 4.0
    assert session_timeout(Settings(), broker_min_s=6.0, broker_max_s=1800) == 6.0


def test_a_given_session_timeout_the_broker_would_refuse_is_named_at_start():
    with pytest.raises(ValueError, match=r"below 6 s.*AEGIS_SESSION_TIMEOUT_S=4"):
        session_timeout(Settings(session_timeout_s=4.0), broker_min_s=6.0)
    with pytest.raises(ValueError, match=r"above 300 s.*AEGIS_SESSION_TIMEOUT_S=600"):
        session_timeout(Settings(session_timeout_s=600.0), broker_max_s=300.0)
    assert session_timeout(Settings(session_timeout_s=8.0), 6.0, 300.0) == 8.0


def test_the_embedded_broker_sets_no_session_bounds_and_the_worker_keeps_4_s(broker):
    bounds = admin.run_sync(lambda: admin.group_session_bounds(broker.bootstrap))
    assert bounds == (None, None)
    settled = with_session_timeout(Settings(kafka_broker=broker.url), broker.url)
    assert settled.session_timeout_s == 4.0
