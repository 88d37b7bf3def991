"""Retraining: challengers trained on the latest labelled window, compared with the
champion on the latest labelled holdout, promoted only when clearly better.

Everything comes from the result store, which holds every decision with the features the
stream computed for it, and every label (analyst verdicts from the API, chargebacks the
sink reads from aegis.labels). Training on the stream's own features means a challenger
learns exactly what it will see when it scores. The features are the ones of the config
the process runs (the stream's): a champion trained with another config is not evaluated,
and stored decisions that lack one of its features are refused.

Time layout, backwards from the reference time R (the newest stored transaction, or
`as_of` for a backtest; only labels known by then are used):

    ... | train (per challenger: train_days) | holdout (holdout_days) | label delay | R

A transaction older than R - delay has had its delay to be labelled, so an unlabelled one
counts as genuine. Champion and challengers score the same holdout; the best challenger
is promoted when its metric beats the champion's by `margin` and it wins in at least
`confidence` of paired bootstrap resamples of the holdout (a gain within the noise of one
week's holdout is not a better model). Every run, promoted or not,
is appended to MODEL_DIR/runs.jsonl, and each challenger stays in the registry (inactive
unless promoted) with its lineage.
"""

from __future__ import annotations

import fcntl
import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from aegis_app.core.config import Config
from models.detectors.bundle import ModelBundle
from models.lifecycle import drift, registry
from models.lifecycle.evaluation import metrics
from models.lifecycle.model_config import running_config
from models.lifecycle.training import Window, fit_bundle

log = logging.getLogger(__name__)
# How the store writes tx_datetime (aegis_app.core.records.DATETIME_FORMAT; models/ does not
# import the application layer, so the text is repeated here).
DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"
METRICS = ("average_precision", "auc_roc", "card_precision_at_100")


@dataclass(frozen=True)
class RetrainConfig:
    # One challenger per training-window length (days): a short window follows a new
    # pattern sooner, a longer one is steadier.
    train_days: tuple[int, ...] = (7, 14)
    holdout_days: int = 7
    delay_days: int = 7
    # Promotion rule: challenger[metric] >= champion[metric] + margin.
    metric: str = "average_precision"
    margin: float = 0.01
    # ... and the challenger must win in at least this share of paired bootstrap resamples
    # of the holdout (average precision and AUC): a week's holdout is small, and a gain
    # below its noise is luck, not a better model. 0 turns the check off.
    confidence: float = 0.9
    bootstrap_samples: int = 200
    # Fewer frauds than this in the holdout (or a training window): nothing is decided.
    min_frauds: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"metric: expected one of {METRICS}, got {self.metric!r}")
        if not self.train_days or min(self.train_days) < 1 or self.holdout_days < 1:
            raise ValueError("train_days and holdout_days must be at least 1 day")
        if self.delay_days < 0:
            raise ValueError("delay_days must not be negative")
        if not 0.0 <= self.confidence < 1.0:
            raise ValueError("confidence must be in [0, 1)")


@dataclass
class Plan:
    reference: pd.Timestamp
    holdout: Window
    train: list[Window] = field(default_factory=list)


def plan(reference: pd.Timestamp, config: RetrainConfig) -> Plan:
    """The holdout and training windows for a run at `reference` (event time)."""
    settled = reference.floor("D") - pd.Timedelta(days=config.delay_days)
    holdout = Window(settled - pd.Timedelta(days=config.holdout_days), config.holdout_days)
    train = [Window(holdout.start - pd.Timedelta(days=d), d) for d in config.train_days]
    return Plan(reference, holdout, train)


@dataclass
class LabelledRows:
    """Stored decisions of one window, as a model reads them."""

    # TRANSACTION_ID, TX_DATETIME, CUSTOMER_ID (the card), TERMINAL_ID (the merchant),
    # score, model_version: the protocol's names (models.lifecycle.evaluation reads them).
    frame: pd.DataFrame
    features: list[dict]  # the stored features: name -> float, or str (categories) or None
    y: np.ndarray
    # Built once per feature order: the holdout is scored by the champion and by every
    # challenger, a training window is fitted on and profiled for drift.
    _tables: dict[tuple[str, ...], pd.DataFrame] = field(default_factory=dict, repr=False)

    @property
    def frauds(self) -> int:
        return int(self.y.sum())

    def table(self, names: list[str]) -> pd.DataFrame:
        """The stored features in this order, one column each (categories stay text)."""
        key = tuple(names)
        if key not in self._tables:
            lacking = sorted({n for row in self.features for n in names if n not in row})
            if lacking:
                raise registry.ModelRefused(f"stored decisions lack features {lacking}")
            self._tables[key] = pd.DataFrame(
                {n: [row[n] for row in self.features] for n in names}, index=self.frame.index
            )
        return self._tables[key]

    def matrix(self, names: list[str]) -> np.ndarray:
        """The features as floats, in this order (numeric features only: a bundle reads
        categories through :meth:`inputs`)."""
        return self.table(names).to_numpy(dtype=np.float64)

    def inputs(self, bundle: ModelBundle) -> np.ndarray:
        """The float matrix `bundle` reads (its feature order, categories coded)."""
        return bundle.matrix(self.table(list(bundle.feature_names)))


def load_window(store, window: Window, known_by: datetime | None) -> LabelledRows:
    """A window's stored decisions and their labels (fraud only if known by `known_by`)."""
    start, end = window.start.strftime(DATETIME_FORMAT), window.end.strftime(DATETIME_FORMAT)
    rows = store.training_rows(start, end)
    labels = store.labels_known(start, end, known_by)
    frame = pd.DataFrame(
        {
            "TRANSACTION_ID": [r["transaction_id"] for r in rows],
            "TX_DATETIME": pd.to_datetime([r["tx_datetime"] for r in rows]),
            "CUSTOMER_ID": [r["card"] for r in rows],
            "TERMINAL_ID": [r["merchant"] for r in rows],
            "score": [r["score"] for r in rows],
            "model_version": [r["model_version"] for r in rows],
        }
    )
    y = np.array([labels.get(r["transaction_id"], 0) for r in rows], dtype=np.int64)
    return LabelledRows(frame, [r["features"] for r in rows], y)


def ensemble_scores(bundle: ModelBundle, rows: LabelledRows) -> np.ndarray:
    return bundle.score(rows.inputs(bundle))["ensemble"]


def _metrics(rows: LabelledRows, scores: np.ndarray) -> dict[str, float | None]:
    return {k: _finite(v) for k, v in metrics(rows.y, scores, rows.frame).items()}


def win_rate(
    y: np.ndarray,
    champion: np.ndarray,
    challenger: np.ndarray,
    metric: str,
    samples: int = 200,
    seed: int = 0,
) -> float | None:
    """Share of paired bootstrap resamples (rows drawn with replacement, both models on the
    same draw) in which the challenger's metric is higher; None if the metric has no
    row-level bootstrap here (CP@100 is a per-day card ranking)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    score = {"average_precision": average_precision_score, "auc_roc": roc_auc_score}.get(metric)
    if score is None:
        return None
    rng = np.random.default_rng(seed)
    wins = counted = 0
    for _ in range(samples):
        rows = rng.integers(0, len(y), len(y))
        if y[rows].min() == y[rows].max():
            continue  # one class only: the metric is undefined on this draw
        counted += 1
        wins += score(y[rows], challenger[rows]) > score(y[rows], champion[rows])
    return wins / counted if counted else None


@contextmanager
def exclusive(model_dir: Path) -> Iterator[bool]:
    """One retraining at a time per registry (across processes); yields False if busy."""
    Path(model_dir).mkdir(parents=True, exist_ok=True)
    with open(Path(model_dir) / ".retrain.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def retrain(
    store,
    model_dir: Path,
    config: RetrainConfig | None = None,
    *,
    as_of: pd.Timestamp | None = None,
    on_promote: Callable[[dict], None] | None = None,
    report: Callable[[str], None] | None = None,
    quiet: bool = True,
    feature_config: Config | None = None,
) -> dict:
    """One retraining run; returns (and records) what it did and why.

    `as_of` replays the decision at an earlier moment (labels known by then only); by
    default the reference is the newest stored transaction and every stored label counts.
    `on_promote` receives the activation entry (the CLI announces it to the workers).
    `feature_config`: the config the stream computed the stored features with (default:
    the one this process runs); challengers record it, a champion of another is refused.
    """
    config = config or RetrainConfig()
    features = feature_config if feature_config is not None else running_config()
    say = report or (lambda message: log.info("%s", message))
    started = time.monotonic()
    run: dict = {
        "run": datetime.now(UTC).strftime("r%Y%m%dT%H%M%S%f"),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": asdict(config),
        "champion": None,
        "challengers": [],
    }

    def finish(decision: str, reason: str) -> dict:
        run.update(decision=decision, reason=reason, seconds=round(time.monotonic() - started, 1))
        registry.record_run(model_dir, run)
        say(f"retrain {run['run']}: {decision} ({reason})")
        return run

    if as_of is None:
        latest = store.latest_tx_datetime()
        if latest is None:
            return finish("skipped", "the store holds no decisions yet")
        reference, known_by = pd.Timestamp(latest), None
        previous = next(
            (r for r in reversed(registry.list_runs(model_dir)) if "reference" in r), None
        )
        if previous is not None and previous["reference"] == str(reference):
            run["reference"] = str(reference)
            return finish("skipped", f"no new transactions since run {previous['run']}")
    else:
        reference = pd.Timestamp(as_of)
        known_by = reference.tz_localize(UTC).to_pydatetime()
    layout = plan(reference, config)
    run["reference"] = str(reference)
    run["holdout"] = layout.holdout.describe()
    holdout = load_window(store, layout.holdout, known_by)
    run["holdout"].update(rows=len(holdout.y), frauds=holdout.frauds)
    say(
        f"retrain {run['run']}: reference {reference}, holdout {run['holdout']['start']} .. "
        f"{run['holdout']['end_exclusive']} ({len(holdout.y)} rows, {holdout.frauds} frauds)"
    )
    if holdout.frauds < config.min_frauds:
        return finish(
            "skipped", f"holdout has {holdout.frauds} frauds, fewer than {config.min_frauds}"
        )
    names = list(features.feature_names)
    try:
        holdout.table(names)
    except registry.ModelRefused as exc:
        # Decisions stored under another config: nothing here can be compared.
        return finish("skipped", f"holdout: {exc} (stored under another config?)")

    champion_version = registry.active_version(model_dir)
    champion_score = -math.inf
    champion_scores: np.ndarray | None = None
    if champion_version is not None:
        try:
            champion = registry.load(model_dir, champion_version, config=features)
            champion_scores = ensemble_scores(champion, holdout)
            result = _metrics(holdout, champion_scores)
            champion_score = _comparable(result[config.metric])
            run["champion"] = {"version": champion_version, "metrics": result}
            trained = registry.read_manifest(registry.version_dir(model_dir, champion_version))
            if _overlaps(trained.training_window, layout.holdout):
                # Scored on rows it was trained on: its figures flatter it, so challengers
                # face a higher bar until the holdout moves past its training window.
                run["champion"]["in_sample"] = True
            say(f"  champion {champion_version}: {_fmt(result)}")
        except registry.ModelRefused as exc:
            run["champion"] = {"version": champion_version, "refused": str(exc)}
            say(f"  champion {champion_version} cannot be evaluated: {exc}")

    for window in layout.train:
        rows = load_window(store, window, known_by)
        entry: dict = {
            "training_window": {**window.describe(), "rows": len(rows.y), "frauds": rows.frauds}
        }
        run["challengers"].append(entry)
        if rows.frauds < config.min_frauds:
            entry["skipped"] = f"{rows.frauds} frauds in the training window"
            say(f"  challenger on {window.days} d: skipped ({entry['skipped']})")
            continue
        try:
            rows.table(names)
        except registry.ModelRefused as exc:
            entry["skipped"] = f"{exc} (stored under another config?)"
            say(f"  challenger on {window.days} d: skipped ({entry['skipped']})")
            continue
        say(
            f"  training a challenger on {window.days} d ({len(rows.y)} rows, {rows.frauds} frauds)"
        )
        bundle = _fit(rows, model_dir, config, features, quiet)
        scores = ensemble_scores(bundle, holdout)
        result = _metrics(holdout, scores)
        entry.update(version=bundle.version, metrics=result)
        if champion_scores is not None and config.confidence > 0:
            entry["win_rate"] = win_rate(
                holdout.y,
                champion_scores,
                scores,
                config.metric,
                config.bootstrap_samples,
                config.seed,
            )
        registry.save(
            bundle,
            model_dir,
            training_window=entry["training_window"],
            activate=False,
            drift_reference=drift.bundle_reference(bundle, rows.inputs(bundle)),
            lineage={
                "source": "retrain",
                "run": run["run"],
                "champion": champion_version,
                "holdout": run["holdout"],
                "holdout_metrics": result,
            },
        )
        say(f"  challenger {bundle.version} ({window.days} d): {_fmt(result)}")

    scored = [c for c in run["challengers"] if "metrics" in c]
    if not scored:
        return finish("kept", "no challenger could be trained")
    best = max(scored, key=lambda c: _comparable(c["metrics"][config.metric]))
    best_score = _comparable(best["metrics"][config.metric])
    run["best"] = best["version"]
    if best_score == -math.inf:
        return finish("kept", f"no challenger has a defined {config.metric}")
    if best_score < champion_score + config.margin:
        return finish(
            "kept",
            f"best challenger {best['version']} {config.metric} {best_score:.4f} does not beat "
            f"champion {champion_score:.4f} by {config.margin}",
        )
    wins = best.get("win_rate")
    if wins is not None and wins < config.confidence:
        return finish(
            "kept",
            f"best challenger {best['version']} {config.metric} {best_score:.4f} vs champion "
            f"{champion_score:.4f}: wins only {wins:.0%} of bootstrap resamples of the holdout "
            f"(needs {config.confidence:.0%}); the gain is within the holdout's noise",
        )
    activation = registry.activate_version(
        model_dir, best["version"], reason="promoted", run=run["run"], champion=champion_version
    )
    run["promoted"] = best["version"]
    if on_promote is not None:
        on_promote(activation)
    beaten = "no usable champion" if champion_score == -math.inf else f"{champion_score:.4f}"
    confident = "" if wins is None else f", winning {wins:.0%} of bootstrap resamples"
    return finish(
        "promoted",
        f"{best['version']} {config.metric} {best_score:.4f} beats {beaten} by >= "
        f"{config.margin}{confident}",
    )


def _fit(
    rows: LabelledRows, model_dir: Path, config: RetrainConfig, features: Config, quiet: bool
) -> ModelBundle:
    return fit_bundle(
        rows.table(list(features.feature_names)),
        rows.y,
        version=registry.new_version_id(model_dir),
        config=features,
        seed=config.seed,
        times=rows.frame["TX_DATETIME"].to_numpy(),
        cards=rows.frame["CUSTOMER_ID"].to_numpy(),
        quiet=quiet,
    )


def _overlaps(training_window: dict, holdout: Window) -> bool:
    try:
        start = pd.Timestamp(training_window["start"])
        end = pd.Timestamp(training_window["end_exclusive"])
    except (KeyError, TypeError, ValueError):
        return False
    return bool(start < holdout.end and holdout.start < end)


def _finite(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def _comparable(value: float | None) -> float:
    return -math.inf if value is None else float(value)


def _fmt(result: dict) -> str:
    def one(name: str) -> str:
        value = result.get(name)
        return "n/a" if value is None else f"{value:.3f}"

    return (
        f"AP {one('average_precision')}, AUC {one('auc_roc')}, "
        f"CP@100 {one('card_precision_at_100')}"
    )
