"""The worker app's consumer-group timeouts: their defaults, their AEGIS_* variables, and
the combinations refused before a worker starts (docs/OPERATIONS.md "Failover")."""

from __future__ import annotations

import pytest

from aegis_app.core.settings import Settings
from aegis_app.worker.app import create_app, group_timeouts


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
    assert timeouts["broker_session_timeout"] == Settings().session_timeout_s


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
