"""The chaos run's pure parts: the fault schedule and the verdict."""

from __future__ import annotations

import pytest

from aegis_app.harness.chaos.fault_run import FAULTS, ChaosConfig, _schedule, verdict


class RecordingStack:
    """Stands in for ChaosStack: records which fault actions ran."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def kill_worker(self, name):
        self.calls.append(("kill", name))

    def start_worker(self, name):
        self.calls.append(("start", name))

    def wait_healthy(self, name, timeout=180):
        self.calls.append(("healthy", name))

    def stop_worker(self, name):
        self.calls.append(("stop", name))

    def pause_broker(self, seconds):
        self.calls.append(("pause", seconds))

    def note(self, what, **details):
        pass


def _fire(config: ChaosConfig, n_items: int) -> tuple[list[int], list[tuple]]:
    stack = RecordingStack()
    actions = _schedule(config, stack, n_items)
    for index in sorted(actions):
        actions[index]()
    return sorted(actions), stack.calls


def test_all_faults_at_their_fractions():
    indexes, calls = _fire(ChaosConfig(workers=2, broker_pause_s=3.0), 1000)
    assert indexes == [150, 400, 500, 650, 850]
    assert calls == [
        ("kill", "w1"),
        ("start", "w1"),
        ("healthy", "w1"),
        ("start", "w2"),
        ("healthy", "w2"),
        ("pause", 3.0),
        ("healthy", "w2"),
        ("stop", "w2"),
    ]


def test_faults_that_need_another_are_left_out():
    _, calls = _fire(ChaosConfig(faults=("restart", "remove", "pause"), broker_pause_s=0), 100)
    assert calls == []


def test_colliding_faults_get_distinct_items():
    indexes, _ = _fire(ChaosConfig(faults=FAULTS), 3)
    assert len(indexes) == len(set(indexes)) == 5


def _clean_result() -> dict:
    return {
        "lost": 0,
        "doubled_after_dedup": 0,
        "conflicting_duplicates": 0,
        "unexpected_decisions": 0,
        "poison_not_dead_lettered": 0,
        "feature_mismatches": 0,
        "card_state": {"mismatched": 0},
        "workers_crashed": [],
        "store": {"missing": 0},
    }


def test_clean_result_passes():
    assert verdict(_clean_result()) is True
    without_store = _clean_result()
    del without_store["store"]
    assert verdict(without_store) is True


@pytest.mark.parametrize(
    "key, value",
    [
        ("lost", 1),
        ("doubled_after_dedup", 1),
        ("conflicting_duplicates", 2),
        ("unexpected_decisions", 1),
        ("poison_not_dead_lettered", 3),
        ("feature_mismatches", 1),
        ("card_state", {"mismatched": 1}),
        ("workers_crashed", ["w0"]),
        ("store", {"missing": 5}),
    ],
)
def test_any_failure_fails(key, value):
    result = _clean_result()
    result[key] = value
    assert verdict(result) is False
