"""Training: features from the feature engine (tables.engine), detectors fitted, a bundle made.

Only labels known by the moment of training are used: a label becomes known
`delay_days` after its transaction, so the caller passes a window whose labels are
all known by then (see `default_train_window`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from aegis_app.core import config as config_files
from aegis_app.core.config import Config
from aegis_app.core.timerules import DAY, label_known_at
from models.decisions import thresholds as threshold_rules
from models.detectors.autoencoder import AutoencoderDetector
from models.detectors.base import Detector
from models.detectors.bundle import PERCENTILE_MEAN, STACKED, SUPERVISED_MEAN, ModelBundle, Stacker
from models.detectors.bundle import transform as score_transform
from models.detectors.categories import build_vocabulary, encode_values, vocabulary_index
from models.detectors.gradient_boosting import GradientBoostingDetector
from models.detectors.isolation_forest import IsolationForestDetector
from models.detectors.logistic import LogisticRegressionDetector
from models.detectors.ocsvm import OneClassSVMDetector
from models.lifecycle.model_config import describe_config

# Unsupervised detectors read a subset: the amount, its ratio and z-score to the card's
# norm, the fraud shares and the amount means (UNSUPERVISED_KINDS, in this order). On the
# full set their anomalies are dominated by genuine-but-rare patterns (night hours, long
# gaps between a card's transactions), which costs AP.
UNSUPERVISED_KINDS: tuple[str, ...] = ("value", "ratio", "zscore", "fraud_share", "mean")
# The rule's result on the Handbook preset (configs/handbook.toml; tested), used when no
# config is given.
UNSUPERVISED_FEATURES: tuple[str, ...] = (
    "TX_AMOUNT",
    "CUSTOMER_ID_AMOUNT_RATIO_30DAY",
    "CUSTOMER_ID_AMOUNT_ZSCORE_30DAY",
    "TERMINAL_ID_RISK_1DAY_WINDOW",
    "TERMINAL_ID_RISK_7DAY_WINDOW",
    "TERMINAL_ID_RISK_30DAY_WINDOW",
    "CUSTOMER_ID_AVG_AMOUNT_1DAY_WINDOW",
    "CUSTOMER_ID_AVG_AMOUNT_7DAY_WINDOW",
    "CUSTOMER_ID_AVG_AMOUNT_30DAY_WINDOW",
)
# The latest share of the training rows (time order) on which the stacker is fitted
# (0.3: ~2 days, ~190 frauds on the default data; steadier than 0.2 on seeds 0 and 1).
HOLDOUT_SHARE = 0.3
# Fewer frauds than this in the holdout (or before it): no stacker, see ModelBundle.
MIN_HOLDOUT_FRAUDS = 5
# Regularisation of the stacker's logistic regression.
STACKER_C = 1.0
# Fallback thresholds (no labels to choose from): quantiles of the training ensemble.
REVIEW_QUANTILE = 0.99
BLOCK_QUANTILE = 0.999
# Reference scores kept per detector for the percentile fallback.
REFERENCE_SIZE = 20_000
# How each detector's raw score enters the stacker (monotone, ~linear in the log-odds).
SCORE_TRANSFORMS = {
    "logistic_regression": "logit",
    "gradient_boosting": "logit",
    "autoencoder": "log",
    "isolation_forest": "identity",
    "ocsvm": "identity",
}


@dataclass(frozen=True)
class Window:
    start: pd.Timestamp
    days: int

    @property
    def end(self) -> pd.Timestamp:
        return self.start + pd.Timedelta(days=self.days)

    def mask(self, datetimes: pd.Series) -> np.ndarray:
        values = pd.to_datetime(datetimes)
        return ((values >= self.start) & (values < self.end)).to_numpy()

    def describe(self) -> dict:
        return {
            "start": str(self.start.date()),
            "end_exclusive": str(self.end.date()),
            "days": self.days,
        }


def default_detectors(seed: int = 0, quiet: bool = True) -> list[Detector]:
    return [
        IsolationForestDetector(seed=seed),
        OneClassSVMDetector(seed=seed),
        AutoencoderDetector(seed=seed, quiet=quiet),
        LogisticRegressionDetector(),
        GradientBoostingDetector(seed=seed),
    ]


def unsupervised_features(config: Config) -> list[str]:
    """The declared features the unsupervised detectors read: the amount's value and every
    ratio, z-score, fraud share and mean of the amount, grouped by kind in
    UNSUPERVISED_KINDS order, in declaration order within a kind."""
    amount_kinds = ("value", "ratio", "zscore", "mean")
    chosen = []
    for kind in UNSUPERVISED_KINDS:
        for feature in config.features:
            if feature.kind != kind:
                continue
            if kind in amount_kinds and feature.field != "amount":
                continue
            chosen.append(feature.name)
    return chosen


def default_feature_subsets(names: list[str], config: Config | None = None) -> dict[str, list[str]]:
    """Features per detector: the unsupervised ones on `unsupervised_features(config)`
    (UNSUPERVISED_FEATURES without a config) when available."""
    rule = UNSUPERVISED_FEATURES if config is None else unsupervised_features(config)
    subset = [f for f in rule if f in names]
    if len(subset) < 2:
        return {}
    return {"isolation_forest": subset, "ocsvm": subset, "autoencoder": subset}


def default_train_window(datetimes: pd.Series, train_days: int, delay_days: int) -> Window:
    """The latest `train_days` whose labels are all known at the end of the data."""
    last_day = pd.to_datetime(datetimes).max().normalize()
    end = last_day + pd.Timedelta(days=1) - pd.Timedelta(days=delay_days)
    return Window(end - pd.Timedelta(days=train_days), train_days)


def warmup_days(config: Config) -> int:
    """Days of history before a target window that the config's features look at: the
    longest window plus its delay, over every entity (whole days)."""
    return math.ceil(max((config.horizon_days(e) for e in config.entities), default=0.0))


def history_start(window_start: pd.Timestamp, config: Config) -> pd.Timestamp:
    """Earliest transaction that can affect features inside a window starting here."""
    return window_start - pd.Timedelta(seconds=warmup_days(config) * DAY)


def categorical_features(config: Config) -> list[str]:
    """The declared features whose values are categories (text), coded for the trees."""
    return [f.name for f in config.features if f.kind == "category"]


def fit_bundle(
    X: np.ndarray | pd.DataFrame,
    y: np.ndarray | None,
    version: str,
    detectors: list[Detector] | None = None,
    feature_names: list[str] | None = None,
    seed: int = 0,
    feature_subsets: dict[str, list[str]] | None = None,
    times: np.ndarray | None = None,
    cards: np.ndarray | None = None,
    holdout_share: float = HOLDOUT_SHARE,
    quiet: bool = True,
    config: Config | None = None,
    categorical: Sequence[str] | None = None,
) -> ModelBundle:
    """Fit every detector (supervised ones on y too) and the stacked ensemble.

    X's rows must be in time order, or `times` (TX_DATETIME of each row) given. With
    labels, the detectors are first fitted on the earliest (1 - holdout_share) of the
    rows and score the rest, the holdout; the stacker (ensemble) is fitted on those
    out-of-sample holdout scores, holdout metrics and default thresholds are computed on
    them (stacker predictions out of fold), then the detectors are refitted on all rows.
    `cards` (CUSTOMER_ID per row) enables CP@100 and the cards-per-day review threshold.

    `config` (the user's declared schema and features) names the features (default: its
    feature order), the categorical ones (kind "category") and the unsupervised subset,
    and is recorded in the bundle's metadata for the manifest; without it, the features
    are `feature_names`, else X's columns, else the default preset's. Categorical columns
    (`categorical`, else the config's) hold text; X is then a DataFrame or an object
    array. Each gets a vocabulary from these rows.
    """
    if feature_names is None and config is not None:
        feature_names = list(config.feature_names)
    if feature_names is None and isinstance(X, pd.DataFrame):
        feature_names = [str(c) for c in X.columns]
    if feature_names is None:
        # Neither named: the default preset's features (configs/handbook.toml), as always.
        feature_names = list(config_files.load(config_files.resolve(None)).feature_names)
    names = list(feature_names)
    if config is not None and names != list(config.feature_names):
        raise ValueError(
            "feature_names are not the config's features in its order: the model must "
            "record the config it was trained with"
        )
    if categorical is None:
        categorical = categorical_features(config) if config is not None else []
    unknown = [c for c in categorical if c not in names]
    if unknown:
        raise ValueError(f"categorical features not among the feature names: {unknown}")
    X, categories = _encode_training_matrix(X, names, list(categorical))
    if X.shape[1] != len(names):
        raise ValueError(f"X has {X.shape[1]} columns for {len(names)} feature names")
    if times is not None:
        order = np.argsort(pd.to_datetime(np.asarray(times)).to_numpy(), kind="stable")
        X = X[order]
        y = None if y is None else np.asarray(y)[order]
        times = np.asarray(times)[order]
        cards = None if cards is None else np.asarray(cards)[order]
    detectors = detectors if detectors is not None else default_detectors(seed, quiet)
    subsets = default_feature_subsets(names, config) if feature_subsets is None else feature_subsets
    has_labels = y is not None and len(np.unique(y)) == 2
    active = [d for d in detectors if has_labels or not d.supervised]
    position = {name: i for i, name in enumerate(names)}
    columns = {d.name: _detector_columns(d, subsets, names, categories) for d in active}
    columns = {name: [position[f] for f in subset] for name, subset in columns.items()}
    detector_features = {d.name: [names[i] for i in columns[d.name]] for d in active}

    fill_values = _fill_values(X)
    X_filled = np.where(np.isnan(X), fill_values, X) if np.isnan(X).any() else X

    def rows_for(det: Detector, rows: slice) -> np.ndarray:
        # Detectors that cannot read NaN see the training median instead (as in scoring).
        source = X if getattr(det, "handles_missing", False) else X_filled
        return source[rows][:, columns[det.name]]

    def fit_all(rows: slice) -> dict[str, Detector]:
        fitted = {}
        for det in active:
            if hasattr(det, "use_categorical"):
                det.use_categorical(np.array([names[i] in categories for i in columns[det.name]]))
            fitted[det.name] = det.fit(rows_for(det, rows), y[rows] if det.supervised else None)
        return fitted

    n = len(X)
    n_hold = int(round(n * holdout_share))
    cut = n - n_hold
    stack_ok = (
        has_labels
        and n_hold > 0
        and y[cut:].sum() >= MIN_HOLDOUT_FRAUDS
        and y[:cut].sum() >= MIN_HOLDOUT_FRAUDS
    )
    metadata: dict = {
        "detector_params": {d.name: _params(d) for d in active},
        "training_rows": n,
        "training_frauds": int(np.sum(y)) if has_labels else None,
    }
    if config is not None:
        metadata["config"] = describe_config(config)
    stacker = None
    hold_scores = None
    if stack_ok:
        fit_all(slice(0, cut))
        hold_raw = {
            d.name: np.asarray(d.score(rows_for(d, slice(cut, n))), dtype=np.float64)
            for d in active
        }
        y_hold = y[cut:].astype(int)
        stacker, oof = _fit_stacker(hold_raw, y_hold, seed)
        hold_scores = {**hold_raw, "ensemble": oof}
        metadata["holdout"] = {
            "rows": int(n_hold),
            "frauds": int(y_hold.sum()),
            "start": str(pd.Timestamp(times[cut])) if times is not None else None,
        }
        metadata["holdout_metrics"] = _holdout_metrics(
            y_hold,
            hold_scores,
            None if times is None else times[cut:],
            None if cards is None else cards[cut:],
        )
        metadata["stacker"] = stacker.describe()
    method = STACKED if stack_ok else (SUPERVISED_MEAN if has_labels else PERCENTILE_MEAN)
    fitted = fit_all(slice(0, n))  # refit on every row (detectors are fitted in place)
    feature_mean, feature_std = _feature_norms(X, [name in categories for name in names])
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, REFERENCE_SIZE, False)) if n > REFERENCE_SIZE else slice(None)
    bundle = ModelBundle(
        version=version,
        feature_names=names,
        detectors=fitted,
        thresholds={},
        feature_mean=feature_mean,
        feature_std=feature_std,
        detector_features=detector_features,
        ensemble_method=method,
        stacker=stacker,
        metadata=metadata,
        categories=categories,
        fill_values=fill_values,
    )
    if method == PERCENTILE_MEAN:
        bundle.reference_scores = {
            name: np.sort(s) for name, s in bundle.raw_scores(X[sample]).items()
        }
    if hold_scores is not None:
        _holdout_thresholds(
            bundle,
            y[cut:],
            hold_scores["ensemble"],
            None if times is None else times[cut:],
            None if cards is None else cards[cut:],
        )
    if not bundle.thresholds:
        ensemble = bundle.score(X[sample])["ensemble"]
        bundle.thresholds = {
            "review": float(np.quantile(ensemble, REVIEW_QUANTILE)),
            "block": float(np.quantile(ensemble, BLOCK_QUANTILE)),
        }
        metadata["thresholds_rule"] = {
            "review": f"quantile {REVIEW_QUANTILE}",
            "block": f"quantile {BLOCK_QUANTILE}",
        }
    return bundle


def _encode_training_matrix(
    X: np.ndarray | pd.DataFrame, names: list[str], categorical: list[str]
) -> tuple[np.ndarray, dict[str, list[str]]]:
    """The float matrix, categorical columns replaced by codes, and their vocabularies."""
    if not categorical:
        if isinstance(X, pd.DataFrame):
            X = X[names] if set(names) <= set(X.columns) else X
        return np.asarray(X, dtype=np.float64), {}
    if isinstance(X, pd.DataFrame):
        absent = [name for name in names if name not in X.columns]
        if absent:
            raise ValueError(f"X has no column for the features {absent}")
        raw = [X[name].to_numpy() for name in names]
    else:
        array = np.asarray(X, dtype=object)
        if array.ndim != 2 or array.shape[1] != len(names):
            raise ValueError(f"X has shape {array.shape} for {len(names)} feature names")
        raw = [array[:, j] for j in range(len(names))]
    categories: dict[str, list[str]] = {}
    columns = []
    for name, values in zip(names, raw):
        if name in categorical:
            categories[name] = build_vocabulary(values)
            columns.append(encode_values(values, vocabulary_index(categories[name])))
        else:
            try:
                columns.append(pd.to_numeric(pd.Series(values), errors="raise").to_numpy(float))
            except (ValueError, TypeError):
                raise ValueError(
                    f"feature {name!r} is numeric but holds non-numbers (declare it as a "
                    "category feature if its values are categories)"
                ) from None
    return np.column_stack(columns).astype(np.float64), categories


def _detector_columns(
    detector: Detector,
    subsets: dict[str, list[str]],
    names: list[str],
    categories: dict[str, list[str]],
) -> list[str]:
    """A detector's features; categorical codes only for detectors that handle them."""
    subset = list(subsets.get(detector.name, names))
    if getattr(detector, "handles_categorical", False) or not categories:
        return subset
    if detector.name in subsets:
        coded = [f for f in subset if f in categories]
        if coded:
            raise ValueError(
                f"{detector.name} reads numbers only; its subset has categorical features {coded}"
            )
    return [f for f in subset if f not in categories]


def _fill_values(X: np.ndarray) -> np.ndarray:
    """Per column, the training median of the present values (0 when none is present)."""
    if not np.isnan(X).any():
        return np.median(X, axis=0) if len(X) else np.zeros(X.shape[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing column
        return np.nan_to_num(np.nanmedian(X, axis=0))


def _feature_norms(X: np.ndarray, categorical: list[bool]) -> tuple[np.ndarray, np.ndarray]:
    """Training mean and std per feature (for reasons): missing values skipped, and none
    for categorical codes (mean 0, std 0)."""
    if np.isnan(X).any():
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing column
            mean, std = np.nanmean(X, axis=0), np.nanstd(X, axis=0)
        mean, std = np.nan_to_num(mean), np.nan_to_num(std)
    else:
        mean, std = X.mean(axis=0), X.std(axis=0)
    mask = np.asarray(categorical, dtype=bool)
    return np.where(mask, 0.0, mean), np.where(mask, 0.0, std)


def _holdout_thresholds(
    bundle: ModelBundle,
    y: np.ndarray,
    scores: np.ndarray,
    times: np.ndarray | None,
    cards: np.ndarray | None,
) -> None:
    """Default thresholds from the holdout's out-of-fold ensemble scores: review at
    DEFAULT_DAILY_BUDGET cards a day (or, without cards, at precision 0.5), block at
    precision 0.9. Left empty (quantile fallback) when unreachable."""
    by_budget = times is not None and cards is not None
    try:
        chosen = threshold_rules.choose(
            y,
            scores,
            daily_budget=threshold_rules.DEFAULT_DAILY_BUDGET if by_budget else None,
            target_precision=None if by_budget else 0.5,
            days=_days(times) if by_budget else None,
            cards=cards if by_budget else None,
            # The holdout starts mid-day: count the days it spans, not the dates it touches.
            n_days=_span_days(times) if by_budget else None,
        )
    except ValueError:
        return
    bundle.thresholds = chosen["thresholds"]
    bundle.metadata["thresholds_rule"] = chosen["rule"]


def _fit_stacker(
    raw: dict[str, np.ndarray], y: np.ndarray, seed: int
) -> tuple[Stacker, np.ndarray]:
    """The stacker on holdout scores, and its out-of-fold predictions (5 time blocks)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import KFold

    names = list(raw)
    hows = [SCORE_TRANSFORMS.get(name, "identity") for name in names]
    T = np.column_stack([score_transform(raw[nm], how) for nm, how in zip(names, hows)])

    def fit(rows: np.ndarray) -> Stacker:
        mean = T[rows].mean(axis=0)
        scale = T[rows].std(axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        lr = LogisticRegression(C=STACKER_C, max_iter=1000, random_state=seed)
        lr.fit((T[rows] - mean) / scale, y[rows])
        return Stacker(names, hows, mean, scale, lr.coef_[0].copy(), float(lr.intercept_[0]))

    oof = np.full(len(y), np.nan)
    for fit_rows, pred_rows in KFold(5, shuffle=False).split(T):
        if len(np.unique(y[fit_rows])) < 2:
            continue
        part = fit(fit_rows)
        oof[pred_rows] = part.predict({nm: raw[nm][pred_rows] for nm in names})
    stacker = fit(np.arange(len(y)))
    missing = np.isnan(oof)
    if missing.any():  # a fold without both classes: fall back to the full stacker there
        oof[missing] = stacker.predict({nm: raw[nm][missing] for nm in names})
    return stacker, oof


def _span_days(times: np.ndarray) -> float:
    values = pd.to_datetime(np.asarray(times))
    return max((values.max() - values.min()) / pd.Timedelta(days=1), 1 / 24)


def _days(times: np.ndarray) -> np.ndarray:
    return pd.to_datetime(np.asarray(times)).to_numpy().astype("datetime64[D]")


def _holdout_metrics(
    y: np.ndarray,
    scores: dict[str, np.ndarray],
    times: np.ndarray | None,
    cards: np.ndarray | None,
) -> dict[str, dict[str, float]]:
    """AUC / AP (and CP@100 with times and cards) of each score on the holdout."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    from models.lifecycle.evaluation import card_precision_at_k

    out = {}
    for name, values in scores.items():
        entry = {
            "auc_roc": float(roc_auc_score(y, values)),
            "average_precision": float(average_precision_score(y, values)),
        }
        if times is not None and cards is not None:
            frame = pd.DataFrame(
                {"TX_DATETIME": pd.to_datetime(times), "CUSTOMER_ID": cards, "TX_FRAUD": y}
            )
            entry["card_precision_at_100"] = card_precision_at_k(frame, values, 100)[0]
        out[name] = entry
    return out


def _params(detector: Detector) -> dict:
    model = getattr(detector, "model", None)
    if model is not None and hasattr(model, "get_params"):
        params = model.get_params(deep=False)
    else:
        params = {k: v for k, v in vars(detector).items() if not k.endswith("_")}
    return {k: v for k, v in params.items() if isinstance(v, int | float | str | bool | tuple)}


def known_labels(df: pd.DataFrame, at: pd.Timestamp, delay_days: int) -> np.ndarray:
    """The label of each normalised record (aegis_app.core.source: `label`, `ts`) where
    known at time `at` (transaction + delay <= at), else NaN."""
    labels = pd.to_numeric(df["label"], errors="coerce").to_numpy(dtype=float)
    known_since = label_known_at(df["ts"].to_numpy(dtype=np.int64), delay_days)
    cutoff = int(at.tz_localize("UTC").timestamp()) if at.tzinfo is None else int(at.timestamp())
    return np.where(known_since <= cutoff, labels, np.nan)
