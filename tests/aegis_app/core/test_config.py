"""The config file: both presets load; every mistake is reported with its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from aegis_app.core.config import ConfigError, load, parse
from tests.tables.engine.cases import HANDBOOK_FEATURES

ROOT = Path(__file__).resolve().parents[3]
HANDBOOK = ROOT / "configs" / "handbook.toml"
SPARKOV = ROOT / "configs" / "sparkov.toml"


def test_the_handbook_preset_declares_todays_features_in_order():
    config = load(HANDBOOK)
    assert tuple(config.feature_names) == HANDBOOK_FEATURES
    assert config.source.card == "CUSTOMER_ID" and config.label_delay_days == 7
    assert config.horizon_days("card") == 30 and config.horizon_days("terminal") == 37


def test_the_sparkov_preset_declares_its_fields_and_entities():
    config = load(SPARKOV)
    assert config.source.pairs["home"] == ("lat", "long")
    assert config.entities == {"card": "card", "merchant": "merchant", "category": "category"}
    names = set(config.feature_names)
    assert {"card_count_1d", "card_amount_mean_30d", "merchant_fraud_share_7d"} <= names
    assert {"cardholder_age", "distance_home_merchant_km", "category"} <= names


def test_yaml_reads_as_toml_does(tmp_path):
    import tomllib

    import yaml

    data = tomllib.loads(SPARKOV.read_text())
    path = tmp_path / "sparkov.yaml"
    path.write_text(yaml.safe_dump(data))
    assert load(path).features == load(SPARKOV).features


def _handbook(**changes) -> dict:
    import tomllib

    data = tomllib.loads(HANDBOOK.read_text())
    for dotted, value in changes.items():
        target = data
        *parents, last = dotted.split("__")
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        if value is None:
            del target[last]
        else:
            target[last] = value
    return data


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"source__amount": None}, "source.amount: missing"),
        ({"source__colour": "x"}, "source.colour: unknown key"),
        ({"features__3__entity": "device"}, "features[3].entity: 'device' is not a declared"),
        ({"features__4__field": "TX_TIP"}, "features[4].field: unknown field 'TX_TIP'"),
        (
            {"features__4__field": "merchant"},
            "features[4].field: 'merchant' is categorical; a 'mean' feature needs numeric",
        ),
        ({"features__3__window_days": -1}, "features[3].window_days: -1 must be above 0"),
        ({"features__3__kind": "median"}, "features[3].kind: 'median' is not one of"),
        ({"features__10__delay_days": 2}, "shorter than labels.delay_days"),
        ({"features__13__window_days": 38}, "reach 45 days back, beyond state.horizon_days = 44"),
        (
            {"source__timestamp": {"field": "TX_DATETIME", "format": "ISO"}},
            "source.timestamp.format: 'ISO' is neither",
        ),
        (
            {"source__timestamp": {"field": "TX_DATETIME", "timezone": "Mars/Olympus"}},
            "unknown time zone 'Mars/Olympus'",
        ),
        ({"entities__terminal": None}, "entities: state must be kept for the merchant"),
    ],
)
def test_mistakes_name_their_key(changes, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse(_handbook(**changes))


def test_a_duplicate_name_and_a_bad_file_are_reported(tmp_path):
    data = _handbook()
    data["features"].append(dict(data["features"][0]))
    with pytest.raises(ConfigError, match="'TX_AMOUNT' is declared twice"):
        parse(data)
    broken = tmp_path / "broken.toml"
    broken.write_text("[source\n")
    with pytest.raises(ConfigError, match="broken.toml: not valid TOML"):
        load(broken)
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load(tmp_path / "absent.toml")
