"""Choosing the review and block thresholds of the ensemble score from labelled scores.

* review: either the score above which, on average, `daily_budget` distinct cards a day
  are alerted (what an analyst team can check), or the lowest score whose precision
  reaches `target_precision` (the largest recall at that precision);
* block: a stricter point, the lowest score whose precision reaches
  max(BLOCK_MIN_PRECISION, target_precision); never below review.

`aegis thresholds` (aegis_app/commands/thresholds.py) applies this to the scores written
by `aegis evaluate --scores-out` and writes the result into a registry manifest.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_curve

BLOCK_MIN_PRECISION = 0.9
DEFAULT_DAILY_BUDGET = 100  # cards a day: the CP@100 analyst team


@dataclass
class Operating:
    """What a threshold does on the labelled data it was chosen on."""

    threshold: float
    precision: float
    recall: float
    alerts: int  # transactions at or above the threshold
    cards_per_day: float | None = None


def operating_point(
    y: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    days: np.ndarray | None = None,
    cards: np.ndarray | None = None,
    n_days: float | None = None,
) -> Operating:
    y = np.asarray(y, dtype=float)
    flagged = np.asarray(scores, dtype=float) >= threshold
    alerts = int(flagged.sum())
    tp = float(y[flagged].sum())
    positives = float(y.sum())
    per_day = None
    if days is not None and cards is not None and len(y):
        frame = pd.DataFrame({"day": days[flagged], "card": cards[flagged]})
        span = n_days if n_days else max(len(np.unique(days)), 1)
        per_day = float(len(frame.drop_duplicates()) / span)
    return Operating(
        threshold=float(threshold),
        precision=tp / alerts if alerts else 1.0,
        recall=tp / positives if positives else 0.0,
        alerts=alerts,
        cards_per_day=per_day,
    )


def threshold_for_precision(y: np.ndarray, scores: np.ndarray, target: float) -> float | None:
    """Lowest threshold with precision >= target (max recall there); None if unreachable."""
    y = np.asarray(y, dtype=int)
    if y.sum() == 0:
        return None
    precision, _recall, cuts = precision_recall_curve(y, scores)
    # precision[i] is the precision of scores >= cuts[i] (the last entry has no cut).
    ok = np.flatnonzero(precision[:-1] >= target)
    return float(cuts[ok[0]]) if len(ok) else None


def threshold_for_daily_budget(
    scores: np.ndarray,
    days: np.ndarray,
    cards: np.ndarray,
    budget: float,
    n_days: float | None = None,
) -> float:
    """Threshold at which, on average over the days, about `budget` cards a day alert.

    A card counts once a day, at its highest score that day. `n_days` (default: the
    number of distinct days) may be fractional, for data that starts or ends mid-day.
    """
    frame = pd.DataFrame({"day": days, "card": cards, "score": np.asarray(scores, float)})
    per_card = frame.groupby(["day", "card"], sort=False)["score"].max().to_numpy()
    span = n_days if n_days else max(frame["day"].nunique(), 1)
    allowed = int(np.floor(budget * span))
    if allowed <= 0:
        return float(np.nextafter(per_card.max(), np.inf)) if len(per_card) else 1.0
    if allowed >= len(per_card):
        return float(per_card.min())
    ranked = np.sort(per_card)[::-1]
    # The allowed-th highest card score; ties at the cut can push slightly over budget,
    # so step just above it when the next one is equal.
    cut = ranked[allowed - 1]
    if ranked[allowed] == cut:
        cut = float(np.nextafter(cut, np.inf))
    return float(cut)


def choose(
    y: np.ndarray,
    scores: np.ndarray,
    target_precision: float | None = None,
    daily_budget: float | None = None,
    days: np.ndarray | None = None,
    cards: np.ndarray | None = None,
    n_days: float | None = None,
) -> dict:
    """Review and block thresholds plus what each does on these data.

    Give exactly one of target_precision / daily_budget (the budget needs days and cards);
    with neither, a budget of DEFAULT_DAILY_BUDGET cards a day is used.
    """
    y = np.asarray(y, dtype=int)
    scores = np.asarray(scores, dtype=float)
    if target_precision is not None and daily_budget is not None:
        raise ValueError("give either a target precision or a daily budget, not both")
    if target_precision is not None and not 0 < target_precision <= 1:
        raise ValueError(f"target precision must be in (0, 1], got {target_precision}")
    if target_precision is None and daily_budget is None:
        daily_budget = DEFAULT_DAILY_BUDGET
    if daily_budget is not None:
        if days is None or cards is None:
            raise ValueError("a daily budget needs the day and card of every score")
        if daily_budget <= 0:
            raise ValueError(f"daily budget must be > 0, got {daily_budget}")
        review = threshold_for_daily_budget(scores, days, cards, daily_budget, n_days)
        rule = {"review": f"daily budget {daily_budget:g} cards/day"}
    else:
        found = threshold_for_precision(y, scores, target_precision)
        if found is None:
            raise ValueError(f"no threshold reaches precision {target_precision}")
        review = found
        rule = {"review": f"precision >= {target_precision:g}"}
    block_precision = max(BLOCK_MIN_PRECISION, target_precision or 0.0)
    block = threshold_for_precision(y, scores, block_precision)
    if block is None:  # unreachable: block only what scores above everything seen
        block = float(np.nextafter(scores.max(), np.inf)) if len(scores) else 1.0
        rule["block"] = f"precision >= {block_precision:g} unreachable: above the top score"
    else:
        rule["block"] = f"precision >= {block_precision:g}"
    block = max(block, review)
    return {
        "thresholds": {"review": float(review), "block": float(block)},
        "rule": rule,
        "review": asdict(operating_point(y, scores, review, days, cards, n_days)),
        "block": asdict(operating_point(y, scores, block, days, cards, n_days)),
        "rows": int(len(y)),
        "frauds": int(y.sum()),
    }


def plot(
    path,
    y: np.ndarray,
    scores: np.ndarray,
    thresholds: dict[str, float],
    title: str = "ensemble",
) -> None:
    """PNG: the precision-recall curve and the score distributions of frauds vs genuine,
    with the review and block thresholds marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y = np.asarray(y, dtype=int)
    scores = np.asarray(scores, dtype=float)
    fig, (ax_pr, ax_hist) = plt.subplots(1, 2, figsize=(12, 4.8))
    precision, recall, _ = precision_recall_curve(y, scores)
    ax_pr.plot(recall, precision, color="black", lw=1.5, label=title)
    colors = {"review": "tab:orange", "block": "tab:red"}
    for name, cut in thresholds.items():
        point = operating_point(y, scores, cut)
        ax_pr.scatter(
            [point.recall],
            [point.precision],
            color=colors.get(name, "tab:blue"),
            zorder=3,
            label=f"{name} >= {cut:.4g}: P={point.precision:.2f} R={point.recall:.2f}",
        )
    ax_pr.set(
        xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title="precision-recall"
    )
    ax_pr.grid(alpha=0.3)
    ax_pr.legend(loc="lower left", fontsize=8)
    bins = np.linspace(0.0, 1.0, 51) if scores.min() >= 0 and scores.max() <= 1 else 50
    ax_hist.hist(
        scores[y == 0], bins=bins, alpha=0.6, density=True, label="genuine", color="tab:blue"
    )
    ax_hist.hist(scores[y == 1], bins=bins, alpha=0.6, density=True, label="fraud", color="tab:red")
    for name, cut in thresholds.items():
        ax_hist.axvline(cut, color=colors.get(name, "tab:blue"), ls="--", label=name)
    ax_hist.set_yscale("log")
    ax_hist.set(xlabel=f"{title} score", ylabel="density (log)", title="score distributions")
    ax_hist.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
