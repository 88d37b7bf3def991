"""Models follow the user's config: categorical features for the trees only, the
unsupervised subset by rule, and the config recorded in (and checked against) the manifest."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aegis_app.core import config as config_files
from models.decisions.decision import feature_matrix
from models.detectors.gradient_boosting import GradientBoostingDetector
from models.detectors.isolation_forest import IsolationForestDetector
from models.detectors.logistic import LogisticRegressionDetector
from models.lifecycle import registry
from models.lifecycle.model_config import describe_config
from models.lifecycle.registry import ModelRefused
from models.lifecycle.training import (
    UNSUPERVISED_FEATURES,
    default_feature_subsets,
    fit_bundle,
    unsupervised_features,
)

CONFIGS = Path(__file__).resolve().parents[3] / "configs"
CATEGORIES = ["grocery_pos", "gas_transport", "shopping_net", "travel", "misc_net"]


@pytest.fixture(scope="module")
def handbook():
    return config_files.load(CONFIGS / "handbook.toml")


@pytest.fixture(scope="module")
def sparkov():
    return config_files.load(CONFIGS / "sparkov.toml")


def sparkov_frame(config, n: int = 3000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Feature rows as the feature engine gives them: floats, text for the categoricals."""
    rng = np.random.default_rng(seed)
    columns = {}
    for feature in config.features:
        if feature.kind == "category":
            pool = CATEGORIES if feature.field == "category" else ["F", "M"]
            values = rng.choice(pool, n).astype(object)
            values[rng.random(n) < 0.03] = None
            columns[feature.name] = values
        else:
            columns[feature.name] = rng.normal(size=n)
            if feature.kind in ("age", "distance"):  # no date of birth or location: NaN
                columns[feature.name][rng.random(n) < 0.05] = np.nan
    frame = pd.DataFrame(columns)
    risky = frame["category"].isin(["shopping_net", "misc_net"]).to_numpy()
    y = (rng.random(n) < np.where(risky, 0.15, 0.01)).astype(int)
    y[:: n // 20] = 1
    frame.loc[y == 1, "amount"] += 3.0
    return frame, y


@pytest.fixture(scope="module")
def sparkov_bundle(sparkov):
    frame, y = sparkov_frame(sparkov)
    detectors = [
        IsolationForestDetector(n_estimators=20, max_samples=256),
        LogisticRegressionDetector(),
        GradientBoostingDetector(max_iter=40, max_leaf_nodes=15, min_samples_leaf=10),
    ]
    return fit_bundle(frame, y, "vsparkov", detectors=detectors, config=sparkov)


# ------------------------------------------------------------------ categorical features


def test_bundle_records_categoricals_and_vocabularies(sparkov_bundle, sparkov):
    assert sparkov_bundle.feature_names == list(sparkov.feature_names)
    assert sparkov_bundle.categorical_features == ["category", "gender"]
    assert sorted(sparkov_bundle.categories["category"]) == sorted(CATEGORIES)
    assert sorted(sparkov_bundle.categories["gender"]) == ["F", "M"]


def test_only_the_trees_read_categorical_codes(sparkov_bundle):
    features = sparkov_bundle.detector_features
    assert {"category", "gender"} <= set(features["gradient_boosting"])
    for name in ("logistic_regression", "isolation_forest"):
        assert not {"category", "gender"} & set(features[name])
    assert "amount" in features["logistic_regression"]
    mask = sparkov_bundle.detectors["gradient_boosting"].model.categorical_features
    expected = [f in ("category", "gender") for f in features["gradient_boosting"]]
    assert list(mask) == expected


def test_feature_dicts_and_frames_give_the_same_codes(sparkov_bundle, sparkov):
    frame, _ = sparkov_frame(sparkov, n=50, seed=3)
    frame.loc[0, "category"] = "never_seen"
    frame.loc[1, "category"] = None
    from_frame = feature_matrix(sparkov_bundle, frame)
    rows = frame.to_dict("records")
    from_dicts = feature_matrix(sparkov_bundle, rows)
    np.testing.assert_array_equal(from_frame, from_dicts)
    column = sparkov_bundle.feature_names.index("category")
    assert np.isnan(from_frame[:2, column]).all()
    vocab = sparkov_bundle.categories["category"]
    assert from_frame[2, column] == vocab.index(rows[2]["category"])


def test_bundle_scores_equal_sklearn_with_unseen_and_missing(sparkov_bundle, sparkov):
    frame, _ = sparkov_frame(sparkov, n=400, seed=4)
    frame.loc[::5, "category"] = "brand_new_category"
    frame.loc[::7, "gender"] = None
    X = feature_matrix(sparkov_bundle, frame)
    gbm = sparkov_bundle.detectors["gradient_boosting"]
    columns = [sparkov_bundle.feature_names.index(f) for f in gbm_features(sparkov_bundle)]
    expected = gbm.model.predict_proba(X[:, columns])[:, 1]
    scores = sparkov_bundle.score(X)
    np.testing.assert_allclose(scores["gradient_boosting"], expected, rtol=0, atol=1e-9)
    assert np.isfinite(scores["ensemble"]).all()


def gbm_features(bundle):
    return bundle.detector_features["gradient_boosting"]


def test_category_changes_the_tree_score(sparkov_bundle, sparkov):
    frame, _ = sparkov_frame(sparkov, n=200, seed=5)

    def tree_scores(category: str) -> np.ndarray:
        X = feature_matrix(sparkov_bundle, frame.assign(category=category))
        return sparkov_bundle.score(X)["gradient_boosting"]

    # The risky categories were learned as such: the same rows score higher with one.
    assert tree_scores("shopping_net").mean() > 1.1 * tree_scores("grocery_pos").mean()


def test_a_categorical_in_a_numeric_detector_subset_is_refused(sparkov):
    frame, y = sparkov_frame(sparkov, n=600)
    with pytest.raises(ValueError, match="logistic_regression reads numbers only"):
        fit_bundle(
            frame,
            y,
            "vbad",
            detectors=[LogisticRegressionDetector()],
            config=sparkov,
            feature_subsets={"logistic_regression": ["amount", "category"]},
        )


def test_text_in_a_numeric_feature_is_named(sparkov):
    frame, y = sparkov_frame(sparkov, n=300)
    frame["amount"] = frame["amount"].astype(object)
    frame.loc[3, "amount"] = "twelve"
    with pytest.raises(ValueError, match="feature 'amount' is numeric"):
        fit_bundle(frame, y, "vbad", detectors=[LogisticRegressionDetector()], config=sparkov)


def test_missing_numbers_reach_the_trees_and_the_median_elsewhere(sparkov_bundle, sparkov):
    frame, _ = sparkov_frame(sparkov, n=300, seed=6)
    frame["cardholder_age"] = np.nan
    X = feature_matrix(sparkov_bundle, frame)
    column = sparkov_bundle.feature_names.index("cardholder_age")
    filled = X.copy()
    filled[:, column] = sparkov_bundle.fill_values[column]
    assert np.isfinite(sparkov_bundle.fill_values).all()
    with_nan, with_median = sparkov_bundle.score(X), sparkov_bundle.score(filled)
    np.testing.assert_array_equal(
        with_nan["logistic_regression"], with_median["logistic_regression"]
    )
    gbm = sparkov_bundle.detectors["gradient_boosting"]
    columns = [sparkov_bundle.feature_names.index(f) for f in gbm_features(sparkov_bundle)]
    expected = gbm.model.predict_proba(X[:, columns])[:, 1]  # NaN as missing, not the median
    np.testing.assert_allclose(with_nan["gradient_boosting"], expected, rtol=0, atol=1e-9)
    assert sparkov_bundle.explain(X[0]) is not None


# ------------------------------------------------------------------ unsupervised subset


def test_rule_gives_todays_subset_for_the_handbook(handbook):
    assert unsupervised_features(handbook) == list(UNSUPERVISED_FEATURES)
    assert len(UNSUPERVISED_FEATURES) == 9
    names = list(handbook.feature_names)
    assert default_feature_subsets(names, handbook) == default_feature_subsets(names)


def test_rule_follows_the_sparkov_config(sparkov):
    chosen = unsupervised_features(sparkov)
    assert chosen == [
        "amount",
        "card_amount_ratio_30d",
        "card_amount_zscore_30d",
        "merchant_fraud_share_1d",
        "merchant_fraud_share_7d",
        "merchant_fraud_share_30d",
        "category_fraud_share_7d",
        "category_fraud_share_30d",
        "card_amount_mean_1d",
        "card_amount_mean_7d",
        "card_amount_mean_30d",
    ]
    assert "city_pop" not in chosen and "category" not in chosen  # other value fields


def test_training_uses_the_configs_subset(sparkov_bundle, sparkov):
    assert sparkov_bundle.detector_features["isolation_forest"] == unsupervised_features(sparkov)


# ------------------------------------------------------------------ config in the manifest


def _save(bundle, model_dir, version, **kwargs):
    bundle.version = version
    try:
        return registry.save(bundle, model_dir, {"start": "2018-07-25", "days": 7}, **kwargs)
    finally:
        bundle.version = "vsparkov"


def _with_feature(config, feature_name, **changes):
    features = tuple(
        dataclasses.replace(f, **changes) if f.name == feature_name else f for f in config.features
    )
    return dataclasses.replace(config, features=features)


def test_manifest_records_the_config(sparkov_bundle, sparkov, tmp_path):
    manifest = _save(sparkov_bundle, tmp_path, "v1")
    recorded = json.loads((tmp_path / "versions/v1/manifest.json").read_text())["config"]
    assert recorded == manifest.config == describe_config(sparkov)
    assert recorded["source"]["roles"]["amount"] == "amt"
    first = recorded["features"][sparkov.feature_names.index("card_count_1d")]
    assert first["kind"] == "count" and first["window_days"] == 1.0
    loaded = registry.load(tmp_path, "v1", config=sparkov)
    assert loaded.categories == sparkov_bundle.categories


def test_another_window_is_refused_with_the_difference(sparkov_bundle, sparkov, tmp_path):
    _save(sparkov_bundle, tmp_path, "v1")
    changed = _with_feature(sparkov, "card_count_1d", window_days=2.0)
    with pytest.raises(ModelRefused, match="feature card_count_1d: window 1 day in the model, "):
        registry.load(tmp_path, "v1", config=changed)
    with pytest.raises(ModelRefused, match="2 days here"):
        registry.load(tmp_path, "v1", config=changed)


def test_missing_and_extra_features_are_named(sparkov_bundle, sparkov, tmp_path):
    _save(sparkov_bundle, tmp_path, "v1")
    fewer = dataclasses.replace(
        sparkov, features=tuple(f for f in sparkov.features if f.name != "city_pop")
    )
    with pytest.raises(ModelRefused, match="feature city_pop is in the model but not in this"):
        registry.load(tmp_path, "v1", config=fewer)
    renamed = _with_feature(sparkov, "city_pop", name="population")
    with pytest.raises(ModelRefused, match="feature population is in this config but not in"):
        registry.load(tmp_path, "v1", config=renamed)


def test_another_source_column_is_named(sparkov_bundle, sparkov, tmp_path):
    _save(sparkov_bundle, tmp_path, "v1")
    other = dataclasses.replace(sparkov, source=dataclasses.replace(sparkov.source, amount="x"))
    with pytest.raises(ModelRefused, match="source amount column: 'amt' in the model, 'x' here"):
        registry.load(tmp_path, "v1", config=other)


def test_handbook_model_with_config_block(fitted_bundle, handbook, sparkov, tmp_path):
    _save(fitted_bundle, tmp_path, "v1", config=handbook)
    assert registry.load(tmp_path, "v1", config=handbook).version == "v1"
    with pytest.raises(ModelRefused, match="TX_AMOUNT is in the model but not in this config"):
        registry.load(tmp_path, "v1", config=sparkov)


def test_models_without_a_config_block_serve_the_handbook_only(
    fitted_bundle, handbook, sparkov, tmp_path
):
    _save(fitted_bundle, tmp_path, "v1")  # fitted without a config: no block recorded
    manifest = json.loads((tmp_path / "versions/v1/manifest.json").read_text())
    assert manifest["config"] == {}
    assert registry.load(tmp_path, "v1").version == "v1"  # no config given: as before
    assert registry.load(tmp_path, "v1", config=handbook).version == "v1"
    with pytest.raises(ModelRefused, match="serves the Handbook preset only"):
        registry.load(tmp_path, "v1", config=sparkov)
    shifted = _with_feature(handbook, "CUSTOMER_ID_NB_TX_1DAY_WINDOW", window_days=2.0)
    with pytest.raises(ModelRefused, match="window 1 day in the model, 2 days here"):
        registry.load(tmp_path, "v1", config=shifted)


def test_a_manifest_from_before_this_change_loads(fitted_bundle, handbook, tmp_path):
    _save(fitted_bundle, tmp_path, "v1")
    path = tmp_path / "versions/v1/manifest.json"
    data = json.loads(path.read_text())
    del data["config"]  # written by the previous code
    path.write_text(json.dumps(data))
    assert registry.load(tmp_path, "v1", config=handbook).version == "v1"


def test_feature_dict_values_none_and_text(sparkov_bundle, sparkov):
    frame, _ = sparkov_frame(sparkov, n=40, seed=7)
    rows = frame.to_dict("records")[:3]
    rows[0]["cardholder_age"] = None
    column = sparkov_bundle.feature_names.index("cardholder_age")
    assert np.isnan(feature_matrix(sparkov_bundle, rows)[0, column])
    rows[1]["city_pop"] = "many"
    with pytest.raises(ValueError, match="feature 'city_pop' is numeric in model vsparkov"):
        feature_matrix(sparkov_bundle, rows)


def test_bundles_pickled_before_this_change_score_the_same(fitted_bundle, data):
    import copy
    import pickle

    old = copy.deepcopy(fitted_bundle)
    del old.detectors["gradient_boosting"].packed_.categorical
    state = old.__getstate__()
    del state["categories"], state["fill_values"]
    restored = object.__new__(type(old))
    restored.__setstate__(pickle.loads(pickle.dumps(state)))
    X = data[0][:200]
    assert restored.categories == {} and restored.fill_values is None
    for name, values in fitted_bundle.score(X).items():
        np.testing.assert_array_equal(restored.score(X)[name], values)
