"""soak_verdict: state and RSS flat past the horizon is bounded; either growing is not;
too few samples past the horizon gives no verdict."""

from __future__ import annotations

from aegis_app.core import config as configs
from aegis_app.harness.chaos.soak_run import soak_verdict, state_horizon_days

HORIZON = 44


def _series(state_kb, rss_mb, start_day=30.0, step_days=5.0):
    """One sample per value; two workers sharing the state, each at the given RSS."""
    return [
        {
            "event_day": start_day + i * step_days,
            "workers": {
                name: {
                    "rss_mb": rss,
                    "rocksdb_dir_mb": 10.0 + i,
                    "state_keys": int(kb * 10),
                    "state_kb": kb / 2,
                }
                for name in ("w0", "w1")
            },
        }
        for i, (kb, rss) in enumerate(zip(state_kb, rss_mb, strict=True))
    ]


def test_horizon_is_the_longest_an_entity_state_keeps(tmp_path):
    # The default preset: the terminals' 30-day windows, 7 days delayed, + one more delay.
    assert state_horizon_days() == HORIZON
    short = tmp_path / "short.toml"
    short.write_text(
        configs.resolve(None).read_text().split("[[features]]")[0]
        + '[[features]]\nkind = "count"\nentity = "card"\nwindow_days = 3\n'
    )
    assert state_horizon_days(configs.load(short)) == 3


def test_flat_series_is_bounded():
    # growing before the horizon (days 30-40), flat from day 45 to 65
    state = [100, 300, 500, 800, 810, 805, 812, 808]
    samples = _series(state, [200, 200, 200, 250, 252, 251, 255, 253])
    verdict = soak_verdict(samples, HORIZON)
    assert verdict["bounded"] is True
    assert verdict["from_event_day"] == 45.0 and verdict["to_event_day"] == 65.0
    assert verdict["state_kb"] == [800.0, 808.0]
    assert set(verdict["rss_growth"]) == {"w0", "w1"}


def test_growing_state_is_not_bounded():
    samples = _series([100, 300, 500, 800, 1000, 1200, 1400, 1600], [250] * 8)
    verdict = soak_verdict(samples, HORIZON)
    assert verdict["bounded"] is False
    assert verdict["state_growth"] > 0.5


def test_growing_rss_is_not_bounded():
    samples = _series([800] * 8, [250, 250, 250, 250, 250, 300, 350, 400])
    verdict = soak_verdict(samples, HORIZON)
    assert verdict["bounded"] is False
    assert verdict["rss_growth"]["w0"] == 0.6


def test_too_few_samples_past_the_horizon():
    samples = _series([100, 200, 300, 400], [250] * 4)  # days 30-45: one past day 44
    verdict = soak_verdict(samples, HORIZON)
    assert verdict["bounded"] is None and "fewer than 2" in verdict["why"]
