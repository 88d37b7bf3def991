"""Training: features from the shared feature code, detectors fitted, a bundle made.

Only labels known by the moment of training are used: a label becomes known
`delay_days` after its transaction, so the caller passes a window whose labels are
all known by then (see `default_train_window`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from aegis_app.core.timerules import DAY, label_known_at
from models.decisions import thresholds as threshold_rules
from models.detectors.autoencoder import AutoencoderDetector
from models.detectors.base import Detector
from models.detectors.bundle import PERCENTILE_MEAN, STACKED, SUPERVISED_MEAN, ModelBundle, Stacker
from models.detectors.bundle import transform as score_transform
from models.detectors.gradient_boosting import GradientBoostingDetector
from models.detectors.isolation_forest import IsolationForestDetector
from models.detectors.logistic import LogisticRegressionDetector
from models.detectors.ocsvm import OneClassSVMDetector
from tables.batch import epoch_seconds, warmup_days
from tables.features import ALL_FEATURES

# Unsupervised detectors read this subset: the amount, the card's amount norms and the
# terminal risk. On the full set their anomalies are dominated by genuine-but-rare
# patterns (night hours, long gaps between a card's transactions), which costs AP.
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


def default_feature_subsets(names: list[str]) -> dict[str, list[str]]:
    """Features per detector: unsupervised ones on UNSUPERVISED_FEATURES when available."""
    subset = [f for f in UNSUPERVISED_FEATURES if f in names]
    if len(subset) < 2:
        return {}
    return {"isolation_forest": subset, "ocsvm": subset, "autoencoder": subset}


def default_train_window(datetimes: pd.Series, train_days: int, delay_days: int) -> Window:
    """The latest `train_days` whose labels are all known at the end of the data."""
    last_day = pd.to_datetime(datetimes).max().normalize()
    end = last_day + pd.Timedelta(days=1) - pd.Timedelta(days=delay_days)
    return Window(end - pd.Timedelta(days=train_days), train_days)


def history_start(window_start: pd.Timestamp, delay_days: int) -> pd.Timestamp:
    """Earliest transaction that can affect features inside a window starting here."""
    return window_start - pd.Timedelta(seconds=warmup_days(delay_days) * DAY)


def fit_bundle(
    X: np.ndarray,
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
) -> ModelBundle:
    """Fit every detector (supervised ones on y too) and the stacked ensemble.

    X's rows must be in time order, or `times` (TX_DATETIME of each row) given. With
    labels, the detectors are first fitted on the earliest (1 - holdout_share) of the
    rows and score the rest, the holdout; the stacker (ensemble) is fitted on those
    out-of-sample holdout scores, holdout metrics and default thresholds are computed on
    them (stacker predictions out of fold), then the detectors are refitted on all rows.
    `cards` (CUSTOMER_ID per row) enables CP@100 and the cards-per-day review threshold.
    """
    X = np.asarray(X, dtype=np.float64)
    names = list(feature_names or ALL_FEATURES)
    if X.shape[1] != len(names):
        raise ValueError(f"X has {X.shape[1]} columns for {len(names)} feature names")
    if times is not None:
        order = np.argsort(pd.to_datetime(np.asarray(times)).to_numpy(), kind="stable")
        X = X[order]
        y = None if y is None else np.asarray(y)[order]
        times = np.asarray(times)[order]
        cards = None if cards is None else np.asarray(cards)[order]
    detectors = detectors if detectors is not None else default_detectors(seed, quiet)
    subsets = default_feature_subsets(names) if feature_subsets is None else feature_subsets
    has_labels = y is not None and len(np.unique(y)) == 2
    active = [d for d in detectors if has_labels or not d.supervised]
    position = {name: i for i, name in enumerate(names)}
    columns = {d.name: [position[f] for f in subsets.get(d.name, names)] for d in active}
    detector_features = {d.name: [names[i] for i in columns[d.name]] for d in active}

    def fit_all(rows: slice) -> dict[str, Detector]:
        fitted = {}
        for det in active:
            Xd = X[rows][:, columns[det.name]]
            fitted[det.name] = det.fit(Xd, y[rows] if det.supervised else None)
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
    stacker = None
    hold_scores = None
    if stack_ok:
        fit_all(slice(0, cut))
        hold_raw = {
            d.name: np.asarray(d.score(X[cut:][:, columns[d.name]]), dtype=np.float64)
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
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, REFERENCE_SIZE, False)) if n > REFERENCE_SIZE else slice(None)
    bundle = ModelBundle(
        version=version,
        feature_names=names,
        detectors=fitted,
        thresholds={},
        feature_mean=X.mean(axis=0),
        feature_std=X.std(axis=0),
        detector_features=detector_features,
        ensemble_method=method,
        stacker=stacker,
        metadata=metadata,
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
    """TX_FRAUD where known at time `at` (transaction + delay <= at), else NaN."""
    labels = pd.to_numeric(df.get("TX_FRAUD"), errors="coerce").to_numpy(dtype=float)
    known_since = label_known_at(epoch_seconds(df["TX_DATETIME"]), delay_days)
    cutoff = int(at.tz_localize("UTC").timestamp()) if at.tzinfo is None else int(at.timestamp())
    return np.where(known_since <= cutoff, labels, np.nan)
