"""The feature kinds computed naively from their definitions (docs/FEATURES.md, "Feature
kinds"), for the engine's tests: plain Python over the whole list of records, no state,
no pruning, no vectorisation."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from aegis_app.core.config import LABEL_KINDS, PAIR_KINDS, TRANSACTION_KINDS, Config
from aegis_app.core.timerules import DAY

NUMERIC_TYPES = ("numeric", "boolean")
ROLE_TYPES = {"card": "categorical", "merchant": "categorical", "amount": "numeric"}


def missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def canonical(value: Any, numeric: bool) -> str | None:
    if missing(value):
        return None
    return repr(float(value) + 0.0) if numeric else str(value)


def field_is_numeric(config: Config, name: str) -> bool:
    kind = ROLE_TYPES.get(name) or config.source.fields[name]
    return kind in NUMERIC_TYPES


def column(name: str) -> str:
    return "ts" if name == "timestamp" else name


def reference_features(config: Config, records: list[dict]) -> list[dict[str, Any]]:
    """Features of each record, the records given in arrival order (a repeated
    transaction id of the same entity key is a redelivery)."""
    label_delay = config.label_delay_days * DAY
    out = []
    for i, record in enumerate(records):
        features: dict[str, Any] = {}
        for feature in config.features:
            if feature.kind in TRANSACTION_KINDS or feature.kind in PAIR_KINDS:
                features[feature.name] = _transaction(config, feature, record)
        for entity, entity_column in config.entities.items():
            own = [f for f in config.features if f.entity == entity]
            if not own:
                continue
            numeric_key = field_is_numeric(config, entity_column)
            key = canonical(record[column(entity_column)], numeric_key)
            if key is None:
                features.update({f.name: math.nan for f in own})
                continue
            # The entity's events: first occurrences of each id for this key.
            events: list[int] = []
            ids: dict[str, int] = {}
            for j in range(i + 1):
                if canonical(records[j][column(entity_column)], numeric_key) != key:
                    continue
                tx_id = str(records[j]["transaction_id"])
                if tx_id not in ids:
                    ids[tx_id] = j
                    events.append(j)
            me = ids[str(record["transaction_id"])]  # a redelivery answers as the first time
            history = events[: events.index(me) + 1]
            for feature in own:
                features[feature.name] = _window(config, feature, records, history, me, label_delay)
        out.append(features)
    return out


def _window(
    config: Config,
    feature,
    records: list[dict],
    history: list[int],
    me: int,
    label_delay: int,
) -> float:
    t = records[me]["ts"]
    span = round(feature.window_days * DAY)
    delay = round(feature.delay_days * DAY)
    window = [j for j in history if t - delay - span < records[j]["ts"] <= t - delay]
    previous = [j for j in window if j != me]
    source = column(feature.field) if feature.field else None
    kind = feature.kind
    if kind == "count":
        return float(len(window))
    if kind in ("sum", "mean", "std", "min", "max"):
        values = [records[j][source] for j in window if not missing(records[j][source])]
        if not values:
            return 0.0
        return {
            "sum": lambda: math.fsum(values),
            "mean": lambda: math.fsum(values) / len(values),
            "std": lambda: _population_std(values),
            "min": lambda: min(values),
            "max": lambda: max(values),
        }[kind]()
    if kind == "distinct":
        numeric = field_is_numeric(config, feature.field)
        values = {canonical(records[j][source], numeric) for j in window}
        return float(len(values - {None}))
    if kind == "since_previous":
        if not previous:
            return float(feature.default if feature.default is not None else span)
        return float(t - max(records[j]["ts"] for j in previous))
    if kind in ("ratio", "zscore"):
        value = records[me][source]
        if missing(value):
            return math.nan
        values = [records[j][source] for j in previous if not missing(records[j][source])]
        if not values:
            return 1.0 if kind == "ratio" else 0.0
        mean = math.fsum(values) / len(values)
        if kind == "ratio":
            return value / mean if mean > 0 else 1.0
        return (value - mean) / (_population_std(values) + 1.0)
    if kind == "novelty":
        numeric = field_is_numeric(config, feature.field)
        mine = canonical(records[me][source], numeric)
        if not previous or mine is None:
            return 0.0
        seen = any(canonical(records[j][source], numeric) == mine for j in previous)
        return 0.0 if seen else 1.0
    if kind in LABEL_KINDS:
        if not window:
            return 0.0
        # A label is known `label_delay` after its transaction, or at the record's
        # "known_at" when the test gives one.
        frauds = sum(
            1
            for j in window
            if records[j].get("label") == 1
            and records[j].get("known_at", records[j]["ts"] + label_delay) <= t
        )
        return frauds / len(window)
    raise AssertionError(f"no reference for {kind}")


def _population_std(values: list[float]) -> float:
    mean = math.fsum(values) / len(values)
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / len(values))


def _transaction(config: Config, feature, record: dict) -> Any:
    ts = record["ts"]
    moment = datetime.fromtimestamp(ts, tz=UTC)
    kind = feature.kind
    if kind == "value":
        value = record[column(feature.field)]
        return math.nan if missing(value) else float(value)
    if kind == "hour":
        return float(moment.hour)
    if kind == "weekend":
        return float(moment.weekday() >= 5)
    if kind == "night":
        return float(moment.hour <= feature.night_end_hour)
    if kind == "day_of_week":
        return float(moment.weekday())
    if kind == "category":
        value = record[column(feature.field)]
        if missing(value):
            return None
        return str(int(value)) if isinstance(value, float) else str(value)
    if kind == "distance":
        points = [
            record[f"{feature.field}.lat"],
            record[f"{feature.field}.lon"],
            record[f"{feature.other}.lat"],
            record[f"{feature.other}.lon"],
        ]
        if any(missing(p) for p in points):
            return math.nan
        lat1, lon1, lat2, lon2 = map(math.radians, points)
        a = (
            math.sin((lat2 - lat1) / 2) ** 2
            + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
        )
        return 2 * 6371.0088 * math.asin(math.sqrt(a))
    if kind == "age":
        born = record[column(feature.field)]
        return math.nan if missing(born) else (ts - born) / (365.25 * DAY)
    raise AssertionError(f"no reference for {kind}")
