"""Compiling a config: windows, kept fields, horizons and groups per entity."""

from __future__ import annotations

from pathlib import Path

import pytest

from aegis_app.core.config import ConfigError, load, parse
from aegis_app.core.timerules import DAY, state_horizon_days
from tables.engine import compile_plan
from tests.tables.engine.cases import HANDBOOK_FEATURES, SOURCE

ROOT = Path(__file__).resolve().parents[3]


def test_the_handbook_plan_keeps_the_handbook_state():
    plan = compile_plan(load(ROOT / "configs" / "handbook.toml"))
    assert plan.names == HANDBOOK_FEATURES
    card, terminal = plan.entities["card"], plan.entities["terminal"]
    assert card.column == "card" and terminal.column == "merchant"
    assert card.horizon == 30 * DAY  # the card's longest window
    assert terminal.horizon == state_horizon_days(30, 7) * DAY  # window + delay + one more delay
    assert card.numeric_fields == ("amount",) and card.key_fields == ("merchant",)
    assert terminal.numeric_fields == () and terminal.key_fields == () and terminal.labels
    assert not card.labels
    assert [w.span // DAY for w in card.windows] == [1, 7, 30]
    assert {w.delay for w in terminal.windows} == {7 * DAY}
    # The card's three means share one computation of windowed sums.
    assert card.demand[("total", "amount", False)] == (0, 1, 2)
    assert [f.kind for f in plan.transaction_features] == ["value", "weekend", "night", "hour"]
    assert plan.text_features == frozenset()


def test_the_sparkov_plan():
    plan = compile_plan(load(ROOT / "configs" / "sparkov.toml"))
    category = plan.entities["category"]
    assert category.column == "category" and category.labels
    assert category.horizon == (30 + 7 + 7) * DAY
    assert plan.entities["card"].key_fields == ("merchant", "category")
    assert plan.text_features == {"category", "gender"}
    assert "home.lat" in plan.columns and "merchant_location.lon" in plan.columns


def config(features: list[dict], **entities: str):
    return parse(
        {
            "source": SOURCE,
            "entities": {"card": "card", "merchant": "merchant", **entities},
            "features": features,
        }
    )


def test_a_feature_reading_the_label_is_refused():
    with pytest.raises(ConfigError, match="leak"):
        compile_plan(
            config([{"kind": "sum", "entity": "card", "field": "label", "window_days": 1}])
        )


def test_layouts_differ_when_the_kept_fields_differ():
    mean = compile_plan(
        config([{"kind": "mean", "entity": "card", "field": "amount", "window_days": 1}])
    )
    score = compile_plan(
        config([{"kind": "mean", "entity": "card", "field": "score", "window_days": 1}])
    )
    wider = compile_plan(
        config([{"kind": "mean", "entity": "card", "field": "amount", "window_days": 9}])
    )
    assert mean.entities["card"].layout != score.entities["card"].layout
    # Another window keeps the same columns: the state stays readable.
    assert mean.entities["card"].layout == wider.entities["card"].layout


def test_entities_without_window_features_keep_no_state():
    plan = compile_plan(config([{"kind": "hour"}]))
    assert plan.entities == {}
