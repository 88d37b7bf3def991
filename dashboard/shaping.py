"""Pure data shaping for the analyst page: API rows in, pandas frames out (no Streamlit).

Rows are decisions as the API answers them (the record's parts under their normalised
names: transaction_id, card, merchant, amount, tx_datetime, fields, features); the page
titles them with the names the config gives them (`RecordNames`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from aegis_app.core.config import Config

ACTIONS = ("review", "block")
# Markdown badges (Streamlit colours; no emoji, which headless browsers may lack).
ACTION_BADGE = {
    "block": ":red-background[**BLOCK**]",
    "review": ":orange-background[**REVIEW**]",
    "allow": ":green-background[ALLOW]",
}
# The page's own column titles; a config name equal to one of them gets its role added.
FIXED_TITLES = ("Decided", "Action", "Score", "Label", "Top reason", "Feature", "Field", "Value")
TIME_WINDOWS: dict[str, timedelta | None] = {
    "Last 15 minutes": timedelta(minutes=15),
    "Last hour": timedelta(hours=1),
    "Last 24 hours": timedelta(hours=24),
    "Last 7 days": timedelta(days=7),
    "Any time": None,
}


# ---------------------------------------------------------------------------- names
@dataclass(frozen=True)
class RecordNames:
    """The config's names of a record's parts (`config.source`), and its extra fields and
    features in their configured order: what the page calls them."""

    transaction_id: str = "transaction_id"
    card: str = "card"
    merchant: str = "merchant"
    amount: str = "amount"
    timestamp: str = "tx_datetime"
    fields: tuple[str, ...] = ()
    features: tuple[str, ...] = ()

    @classmethod
    def of(cls, config: Config) -> RecordNames:
        src = config.source
        return cls(
            transaction_id=src.transaction_id,
            card=src.card,
            merchant=src.merchant,
            amount=src.amount,
            timestamp=src.timestamp.field,
            fields=tuple(src.fields),
            features=tuple(config.feature_names),
        )

    def title(self, role: str) -> str:
        """The column title of a role (transaction_id, card, merchant, amount, timestamp)."""
        name = getattr(self, role)
        return f"{name} ({role})" if name in FIXED_TITLES else name

    def queue_columns(self) -> list[str]:
        return [
            self.title("transaction_id"),
            "Decided",
            "Action",
            "Score",
            self.title("amount"),
            self.title("card"),
            "Label",
            "Top reason",
        ]

    def recent_columns(self) -> list[str]:
        return [
            self.title("transaction_id"),
            self.title("timestamp"),
            self.title("merchant"),
            self.title("amount"),
            "Action",
            "Score",
            "Label",
        ]


# ---------------------------------------------------------------------------- labels
def normalise_label(value: Any) -> str | None:
    """'fraud' | 'legitimate' | None from the forms the API may use (str, 1/0, bool)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool):
        return "fraud" if value else "legitimate"
    if isinstance(value, int | float):
        return "fraud" if int(value) == 1 else "legitimate"
    text = str(value).strip().lower()
    if text in {"fraud", "1", "true", "fraudulent"}:
        return "fraud"
    if text in {"legitimate", "legit", "genuine", "0", "false"}:
        return "legitimate"
    return None


def alert_status(row: Mapping[str, Any]) -> str:
    if row.get("status"):
        return str(row["status"])
    return "labelled" if normalise_label(row.get("label")) else "open"


# ---------------------------------------------------------------------------- filters
def query_params(
    actions: Sequence[str],
    status: str,
    score_range: tuple[float, float],
    window: str,
    now: datetime | None = None,
    *,
    search: str = "",
    rule_id: int | None = None,
    shadow: bool | None = None,
) -> dict[str, Any]:
    """The /v1/alerts query for the sidebar filters (only what narrows the result)."""
    params: dict[str, Any] = {}
    if search.strip():
        params["q"] = search.strip()
    if rule_id is not None:
        params["rule"] = int(rule_id)
        if shadow is not None:
            params["shadow"] = shadow
    chosen = [a for a in actions if a in ACTIONS]
    if len(chosen) == 1:
        params["action"] = chosen[0]
    status = status.lower()
    if status in {"open", "labelled"}:
        params["status"] = status
    low, high = score_range
    if low > 0.0:
        params["min_score"] = round(float(low), 4)
    if high < 1.0:
        params["max_score"] = round(float(high), 4)
    span = TIME_WINDOWS.get(window)
    if span is not None:
        now = now or datetime.now(UTC)
        params["since"] = (now - span).isoformat(timespec="seconds")
    return params


# ---------------------------------------------------------------------------- queue
def top_reason(reasons: Any) -> str:
    if not reasons:
        return ""
    first = str(reasons[0]) if isinstance(reasons, list | tuple) else str(reasons)
    return first if len(first) <= 80 else first[:77] + "..."


def queue_frame(items: Iterable[Mapping[str, Any]], names: RecordNames) -> pd.DataFrame:
    """One row per alert, columns in names.queue_columns() order, newest first as given."""
    rows = [
        [
            _text(item.get("transaction_id")),
            _timestamp(item.get("decided_at")),
            str(item.get("action") or ""),
            _float_or_nan(item.get("score")),
            _float_or_nan(item.get("amount")),
            _text(item.get("card")),
            normalise_label(item.get("label")) or ("open" if alert_status(item) == "open" else ""),
            top_reason(item.get("reasons")),
        ]
        for item in items
    ]
    return pd.DataFrame(rows, columns=names.queue_columns())


def alert_option(row: Mapping[str, Any], names: RecordNames) -> str:
    """The text of an alert in the picker: '#17 · block · score 0.999 · 12.50 · CUSTOMER_ID 5'."""
    score = _float_or_nan(row.get("score"))
    amount = _float_or_nan(row.get("amount"))
    parts = [
        f"#{row.get('transaction_id')}",
        str(row.get("action", "")),
        f"score {score:.3f}" if not math.isnan(score) else "score ?",
        f"{amount:,.2f}" if not math.isnan(amount) else "",
        f"{names.card} {row.get('card')}",
    ]
    label = normalise_label(row.get("label"))
    if label:
        parts.append(f"labelled {label}")
    return " · ".join(p for p in parts if p)


# ---------------------------------------------------------------------------- detail
def scores_frame(scores: Mapping[str, Any] | None) -> pd.DataFrame:
    rows = [
        {"Model": str(name), "Score": float(value)}
        for name, value in (scores or {}).items()
        if _is_number(value)
    ]
    return pd.DataFrame(rows, columns=["Model", "Score"])


def features_frame(features: Mapping[str, Any] | None, order: Sequence[str] = ()) -> pd.DataFrame:
    """(Feature, Value) by the features' configured names, in the config's order (`order`);
    any the config does not name come after, as the API gave them."""
    features = features or {}
    names = [n for n in order if n in features] + [n for n in features if n not in set(order)]
    rows = [{"Feature": str(n), "Value": _format_value(features[n])} for n in names]
    return pd.DataFrame(rows, columns=["Feature", "Value"])


def fields_frame(fields: Mapping[str, Any] | None) -> pd.DataFrame:
    """(Field, Value) of the record's configured extra fields (a latlon field's two
    coordinates as NAME.lat / NAME.lon)."""
    rows = [
        {"Field": str(k), "Value": "—" if v is None else _format_value(v)}
        for k, v in (fields or {}).items()
    ]
    return pd.DataFrame(rows, columns=["Field", "Value"])


def recent_frame(decisions: Iterable[Mapping[str, Any]] | None, names: RecordNames) -> pd.DataFrame:
    rows = [
        [
            _text(d.get("transaction_id")),
            str(d.get("tx_datetime") or ""),
            _text(d.get("merchant")),
            _float_or_nan(d.get("amount")),
            str(d.get("action") or ""),
            _float_or_nan(d.get("score")),
            normalise_label(d.get("label")) or "",
        ]
        for d in decisions or []
    ]
    return pd.DataFrame(rows, columns=names.recent_columns())


# ---------------------------------------------------------------------------- metrics text
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_prometheus(text: str) -> list[tuple[str, dict[str, str], float]]:
    """(name, labels, value) for every sample line of Prometheus exposition text."""
    samples = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if not match:
            continue
        try:
            value = float(match.group(3))
        except ValueError:
            continue
        labels = dict(_LABEL.findall(match.group(2) or ""))
        samples.append((match.group(1), labels, value))
    return samples


def metric_sum(samples: Sequence[tuple[str, dict[str, str], float]], name: str, **match) -> float:
    """Sum of `name` (or `name_total`) samples whose labels include `match`."""
    names = {name, f"{name}_total", name.removesuffix("_total")}
    return sum(
        value
        for sample_name, labels, value in samples
        if sample_name in names and all(labels.get(k) == v for k, v in match.items())
    )


def throughput_counts(samples: Sequence[tuple[str, dict[str, str], float]]) -> dict[str, float]:
    """Cumulative decisions and alerts from aegis_decisions_total{action=...}."""
    by_action = {
        action: metric_sum(samples, "aegis_decisions_total", action=action)
        for action in ("allow", "review", "block")
    }
    total = metric_sum(samples, "aegis_decisions_total")
    return {
        "transactions": total,
        "alerts": by_action["review"] + by_action["block"],
        "review": by_action["review"],
        "block": by_action["block"],
    }


def rates_per_minute(
    history: Sequence[tuple[float, Mapping[str, float]]],
    series: Sequence[str] = ("transactions", "alerts"),
) -> pd.DataFrame:
    """Per-minute rates between successive (epoch seconds, cumulative counts) samples.

    A counter that goes down (the API restarted) starts over instead of going negative.
    """
    rows = []
    for (t0, c0), (t1, c1) in zip(history, history[1:]):
        dt = t1 - t0
        if dt <= 0:
            continue
        for name in series:
            delta = c1.get(name, 0.0) - c0.get(name, 0.0)
            if delta < 0:
                delta = c1.get(name, 0.0)
            rows.append(
                {
                    "Time": pd.Timestamp(t1, unit="s", tz="UTC"),
                    "Series": name,
                    "Per minute": delta * 60.0 / dt,
                }
            )
    return pd.DataFrame(rows, columns=["Time", "Series", "Per minute"])


# ---------------------------------------------------------------------------- charts
def alerts_per_minute(items: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Alerts counted per minute of decision time, split by action."""
    frame = pd.DataFrame(
        {
            "Minute": [_timestamp(i.get("decided_at")) for i in items],
            "Action": [str(i.get("action", "")) for i in items],
        }
        if items
        else {"Minute": [], "Action": []}
    )
    frame = frame.dropna(subset=["Minute"])
    if frame.empty:
        return pd.DataFrame(columns=["Minute", "Action", "Alerts"])
    frame["Minute"] = pd.to_datetime(frame["Minute"], utc=True).dt.floor("min")
    return frame.groupby(["Minute", "Action"]).size().reset_index(name="Alerts")


def score_frame(items: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Score and outcome (fraud / legitimate / unlabelled) of each alert."""
    rows = [
        {
            "Score": float(i["score"]),
            "Outcome": normalise_label(i.get("label")) or "unlabelled",
        }
        for i in items
        if _is_number(i.get("score"))
    ]
    return pd.DataFrame(rows, columns=["Score", "Outcome"])


_BUCKETS = ["1min", "5min", "15min", "1h", "6h", "1D", "7D"]


def precision_over_time(items: Iterable[Mapping[str, Any]], max_buckets: int = 12) -> pd.DataFrame:
    """Precision of labelled alerts per period of decision time, and cumulatively.

    Columns: Period, Labelled, Fraud, Precision (per period), Cumulative precision.
    """
    rows = []
    for item in items:
        label = normalise_label(item.get("label"))
        if label is None:
            continue
        when = _timestamp(item.get("decided_at")) or _timestamp(item.get("labelled_at"))
        if when is None:
            continue
        rows.append({"When": when, "Fraud": 1 if label == "fraud" else 0})
    columns = ["Period", "Labelled", "Fraud", "Precision", "Cumulative precision"]
    if not rows:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame(rows)
    frame["When"] = pd.to_datetime(frame["When"], utc=True)
    span = frame["When"].max() - frame["When"].min()
    freq = _BUCKETS[-1]
    for candidate in _BUCKETS:
        if span / pd.Timedelta(candidate) <= max_buckets:
            freq = candidate
            break
    frame["Period"] = frame["When"].dt.floor(freq)
    grouped = frame.groupby("Period")["Fraud"].agg(["count", "sum"]).reset_index()
    grouped.columns = ["Period", "Labelled", "Fraud"]
    grouped["Precision"] = grouped["Fraud"] / grouped["Labelled"]
    grouped["Cumulative precision"] = grouped["Fraud"].cumsum() / grouped["Labelled"].cumsum()
    return grouped[columns]


def labelled_summary(items: Iterable[Mapping[str, Any]]) -> dict[str, float | int | None]:
    labels = [normalise_label(i.get("label")) for i in items]
    labelled = [x for x in labels if x]
    frauds = sum(1 for x in labelled if x == "fraud")
    return {
        "labelled": len(labelled),
        "fraud": frauds,
        "precision": frauds / len(labelled) if labelled else None,
    }


# ---------------------------------------------------------------------------- models
def active_model(body: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The manifest of the active version, or None when there is none."""
    if not body:
        return None
    versions = body.get("versions") or []
    active = body.get("active_version") or body.get("active")
    for version in versions:
        if version.get("version") == active or (not active and version.get("active") is True):
            return dict(version)
    if active:
        return {"version": active}
    return None


_METRIC_NAMES = {
    "auc_roc": "AUC ROC",
    "average_precision": "Average precision",
    "card_precision_at_100": "Card precision@100",
}


def metrics_frame(metrics: Mapping[str, Any] | None) -> pd.DataFrame:
    """Scalar evaluation metrics (nested detector dicts flattened as 'detector / metric')."""
    rows = []
    for key, value in (metrics or {}).items():
        if _is_number(value):
            rows.append({"Metric": _METRIC_NAMES.get(key, key), "Value": float(value)})
        elif isinstance(value, Mapping) and not _looks_like_curve(value):
            for sub, sub_value in value.items():
                if _is_number(sub_value):
                    name = _METRIC_NAMES.get(sub, sub)
                    rows.append({"Metric": f"{key} / {name}", "Value": float(sub_value)})
    return pd.DataFrame(rows, columns=["Metric", "Value"])


def pr_curve_frame(metrics: Mapping[str, Any] | None) -> pd.DataFrame | None:
    """Recall/precision points when the manifest carries a PR curve, else None.

    Accepts {"pr_curve": {"precision": [...], "recall": [...]}} (also under
    "precision_recall_curve" / "pr") or a list of {"precision", "recall"} points.
    """
    for key in ("pr_curve", "precision_recall_curve", "pr"):
        curve = (metrics or {}).get(key)
        if isinstance(curve, Mapping) and _looks_like_curve(curve):
            precision, recall = list(curve["precision"]), list(curve["recall"])
        elif isinstance(curve, list) and curve and isinstance(curve[0], Mapping):
            precision = [p.get("precision") for p in curve]
            recall = [p.get("recall") for p in curve]
        else:
            continue
        frame = pd.DataFrame({"Recall": recall, "Precision": precision}).dropna()
        if not frame.empty:
            return frame.astype(float)
    return None


def find_pr_curve_png(model_dir: Path | None, version: str | None) -> Path | None:
    """The PR-curve image `aegis thresholds` wrote for `version`, if any."""
    if model_dir is None or not version:
        return None
    folder = Path(model_dir) / "versions" / version
    if not folder.is_dir():
        return None
    if (folder / "pr_thresholds.png").is_file():  # the name `aegis thresholds` writes
        return folder / "pr_thresholds.png"
    images = sorted(folder.glob("*.png"))
    preferred = [p for p in images if re.search(r"(^|[_-])pr([_-]|$)|precision", p.stem.lower())]
    chosen = preferred or images
    return chosen[0] if chosen else None


# ---------------------------------------------------------------------------- helpers
def _looks_like_curve(value: Mapping[str, Any]) -> bool:
    return isinstance(value.get("precision"), list) and isinstance(value.get("recall"), list)


def _timestamp(value: Any) -> pd.Timestamp | None:
    if value is None or value == "":
        return None
    if _is_number(value):  # epoch seconds or milliseconds
        number = float(value)
        return pd.Timestamp(number / 1000.0 if number > 1e11 else number, unit="s", tz="UTC")
    stamp = pd.to_datetime(str(value), utc=True, errors="coerce")
    return None if pd.isna(stamp) else stamp


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _text(value: Any) -> str | None:
    """An id as the page shows it (ids are text: a card number is not a quantity)."""
    return None if value is None else str(value)


def _float_or_nan(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4f}".rstrip("0").rstrip(".") if math.isfinite(value) else str(value)
    return str(value)
