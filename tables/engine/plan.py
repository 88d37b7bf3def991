"""A config compiled into what the engine computes: per entity, its windows, the fields its
state keeps and how long it keeps them; per transaction, the kinds read off the record alone.

Both paths (stream and batch) run from the same :class:`Plan`, so they agree on every
window bound, every field and every horizon.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import numpy as np

from aegis_app.core.config import (
    LABEL_KINDS,
    PAIR_KINDS,
    TRANSACTION_KINDS,
    Config,
    ConfigError,
    Feature,
)
from aegis_app.core.timerules import DAY

# Window kinds by what they read from the entity's events.
NUMERIC_WINDOW_KINDS = ("sum", "mean", "std", "min", "max", "ratio", "zscore")
KEY_WINDOW_KINDS = ("distinct", "novelty")

# Normalised column of each role (the roles keep their name, except the timestamp).
ROLE_COLUMNS = {"timestamp": "ts"}
ROLE_TYPES = {
    "transaction_id": "categorical",
    "card": "categorical",
    "merchant": "categorical",
    "amount": "numeric",
    "timestamp": "date",
    "label": "numeric",
}
REQUIRED_COLUMNS = ("transaction_id", "amount", "ts")

# What each window kind needs computed over its window, as (quantity, over previous events
# only?). Features of one entity that need the same quantity share one computation.
NEEDS: dict[str, tuple[tuple[str, bool], ...]] = {
    "count": (),
    "sum": (("total", False),),
    "mean": (("total", False),),
    "std": (("total", False), ("spread", False)),
    "min": (("min", False),),
    "max": (("max", False),),
    "distinct": (("distinct", False),),
    "since_previous": (),
    "ratio": (("total", True),),
    "zscore": (("total", True), ("spread", True)),
    "novelty": (("seen", True),),
    "fraud_share": (("frauds", False),),
}

# The codes of the compiled kernel (tables.engine.windows): window kinds, and the quantities
# they read (a total is a window's sum of present values and their number).
KIND_CODES = {kind: code for code, kind in enumerate(NEEDS)}
QUANTITY_CODES = {
    quantity: code
    for code, quantity in enumerate(("total", "spread", "min", "max", "distinct", "seen", "frauds"))
}
KEY_QUANTITIES = ("distinct", "seen")  # read value hashes (the others: numbers or labels)

# State keeps event times as 32-bit offsets from the oldest one.
MAX_HORIZON_SECONDS = 2**32 - 1


class RecordError(ValueError):
    """A record or frame the engine cannot read; the message names the column."""


def column_of(name: str) -> str:
    """The normalised column a role or field name reads."""
    return ROLE_COLUMNS.get(name, name)


def field_type(config: Config, name: str) -> str:
    """categorical, numeric, boolean, date or latlon."""
    return ROLE_TYPES.get(name) or config.source.fields[name]


@dataclass(frozen=True)
class Window:
    """The window (t - delay - span, t - delay], in seconds."""

    span: int
    delay: int


# Rows of Program.slots and Program.features.
SLOT_QUANTITY, SLOT_FIELD, SLOT_PREVIOUS, SLOT_ROW, SLOT_TOTAL = range(5)
FEATURE_KIND, FEATURE_ROW, FEATURE_FIELD, FEATURE_FIRST, FEATURE_SECOND = range(5)


@dataclass(frozen=True)
class Program:
    """An entity's window features as the compiled kernel reads them: the quantities over a
    window (slots), each computed once per transaction for every feature that reads it, and
    per feature its kind, window and slots. Fields are indices in EntityPlan.numeric_fields
    (quantities of numbers) or key_fields (of value hashes), -1 for none."""

    # int64 (5, slots), rows: the quantity (QUANTITY_CODES), its field, 1 if over the
    # previous events only, its window (index in EntityPlan.windows), and for a spread the
    # slot of the same window's total (else -1).
    slots: np.ndarray
    # int64 (5, features), rows: the kind (KIND_CODES), its window, the numeric field of the
    # transaction's own value (ratio, zscore), the slot of its first quantity and of its
    # second one (std, zscore: the spread), -1 for none.
    features: np.ndarray
    default: np.ndarray  # float64 per feature: since_previous without an earlier event (s)
    windows: np.ndarray  # int64 (2, windows): span and delay in seconds


@dataclass(frozen=True)
class EntityPlan:
    name: str
    column: str  # the normalised column holding the entity's key
    key_is_numeric: bool
    features: tuple[Feature, ...]
    feature_names: tuple[str, ...]
    windows: tuple[Window, ...]  # distinct windows, each feature points at one (row)
    rows: dict[str, int]  # feature name -> index in windows
    numeric_fields: tuple[str, ...]  # normalised columns kept as float64 per event
    key_fields: tuple[str, ...]  # normalised columns kept as value hashes per event
    key_fields_numeric: tuple[bool, ...]  # per key field: hashed as a number (else as text)
    labels: bool  # keeps fraud labels (has label kinds)
    horizon: int  # seconds of event time the state keeps
    label_delay: int  # seconds between a transaction and its label (batch)
    demand: dict[tuple[str, str | None, bool], tuple[int, ...]]  # quantity -> window rows
    layout: int  # fingerprint of the state's columns (a state of another layout is refused)
    program: Program = field(repr=False, compare=False)


@dataclass(frozen=True)
class Plan:
    config: Config
    entities: dict[str, EntityPlan]  # only entities that some window or label feature uses
    transaction_features: tuple[Feature, ...]
    names: tuple[str, ...]  # every feature, in the config's order
    text_features: frozenset[str]  # features whose values are str (kind "category")
    columns: tuple[str, ...]  # normalised columns a record must carry (label: optional)


def compile_plan(config: Config) -> Plan:
    """The plan of `config`; ConfigError names a feature the engine cannot compute."""
    for feature in config.features:
        _refuse_label_reads(feature)
    entities: dict[str, EntityPlan] = {}
    for name, role_or_field in config.entities.items():
        features = tuple(f for f in config.features if f.entity == name)
        if features:
            entities[name] = _entity_plan(config, name, column_of(role_or_field), features)
    transaction = tuple(
        f for f in config.features if f.kind in TRANSACTION_KINDS or f.kind in PAIR_KINDS
    )
    columns: list[str] = list(REQUIRED_COLUMNS)
    for plan in entities.values():
        columns += [plan.column, *plan.numeric_fields, *plan.key_fields]
    for feature in transaction:
        for name in (feature.field, feature.other):
            if name is None:
                continue
            if field_type(config, name) == "latlon":
                columns += [f"{name}.lat", f"{name}.lon"]
            else:
                columns.append(column_of(name))
    return Plan(
        config=config,
        entities=entities,
        transaction_features=transaction,
        names=config.feature_names,
        text_features=frozenset(f.name for f in config.features if f.kind == "category"),
        columns=tuple(dict.fromkeys(columns)),
    )


def _refuse_label_reads(feature: Feature) -> None:
    # The label of the transaction being scored is unknown in the stream: a feature reading
    # it would see it in training only. Labels enter features through fraud_share.
    if "label" in (feature.field, feature.other):
        raise ConfigError(
            f"feature {feature.name!r}: reads the label as a field, which would leak it into "
            "training; use kind = 'fraud_share' for label-based features"
        )


def _entity_plan(
    config: Config, name: str, column: str, features: tuple[Feature, ...]
) -> EntityPlan:
    if column == "label":
        raise ConfigError(f"entities.{name}: keyed by the label, which would leak it")
    windows: list[Window] = []
    rows: dict[str, int] = {}
    for feature in features:
        window = Window(_seconds(feature.window_days or 0.0), _seconds(feature.delay_days))
        if window.span <= 0:
            raise ConfigError(f"feature {feature.name!r}: a window shorter than one second")
        if window not in windows:
            windows.append(window)
        rows[feature.name] = windows.index(window)
    numeric = tuple(
        dict.fromkeys(column_of(f.field) for f in features if f.kind in NUMERIC_WINDOW_KINDS)
    )
    key_names = tuple(dict.fromkeys(f.field for f in features if f.kind in KEY_WINDOW_KINDS))
    keys = tuple(column_of(k) for k in key_names)
    keys_numeric = tuple(field_type(config, k) in ("numeric", "boolean") for k in key_names)
    labels = any(f.kind in LABEL_KINDS for f in features)
    label_delay = int(config.label_delay_days * DAY)
    longest = max(w.span + w.delay for w in windows)
    # A transaction arriving up to one label delay late still finds its delayed window.
    horizon = longest + (label_delay if any(w.delay > 0 for w in windows) else 0)
    if horizon > MAX_HORIZON_SECONDS:
        raise ConfigError(f"entity {name!r}: windows and delays span more than 136 years")
    demand: dict[tuple[str, str | None, bool], list[int]] = {}
    for feature in features:
        source = column_of(feature.field) if feature.field else None
        for quantity, previous in NEEDS[feature.kind]:
            wanted = demand.setdefault((quantity, source, previous), [])
            if rows[feature.name] not in wanted:
                wanted.append(rows[feature.name])
    key_type = field_type(config, config.entities[name])
    layout_text = repr((numeric, keys, keys_numeric, labels))
    return EntityPlan(
        name=name,
        column=column,
        key_is_numeric=key_type in ("numeric", "boolean"),
        features=features,
        feature_names=tuple(f.name for f in features),
        windows=tuple(windows),
        rows=rows,
        numeric_fields=numeric,
        key_fields=keys,
        key_fields_numeric=keys_numeric,
        labels=labels,
        horizon=horizon,
        label_delay=label_delay,
        demand={k: tuple(sorted(v)) for k, v in demand.items()},
        layout=int.from_bytes(hashlib.blake2b(layout_text.encode(), digest_size=4).digest()),
        program=_program(features, rows, tuple(windows), numeric, keys),
    )


def _program(
    features: tuple[Feature, ...],
    rows: dict[str, int],
    windows: tuple[Window, ...],
    numeric: tuple[str, ...],
    keys: tuple[str, ...],
) -> Program:
    slots: list[tuple[str, int, bool, int]] = []  # (quantity, field, previous, row)

    def field_index(quantity: str, source: str | None) -> int:
        if source is None:
            return -1
        return (keys if quantity in KEY_QUANTITIES else numeric).index(source)

    def slot(quantity: str, source: str | None, previous: bool, row: int) -> int:
        wanted = (quantity, field_index(quantity, source), previous, row)
        if wanted not in slots:
            slots.append(wanted)
        return slots.index(wanted)

    per_feature = []
    for feature in features:
        source = column_of(feature.field) if feature.field else None
        row = rows[feature.name]
        needed = [slot(q, source, previous, row) for q, previous in NEEDS[feature.kind]]
        needed += [-1] * (2 - len(needed))
        own = numeric.index(source) if feature.kind in ("ratio", "zscore") else -1
        default = feature.default if feature.default is not None else windows[row].span
        per_feature.append((KIND_CODES[feature.kind], row, own, *needed, float(default)))
    total_of = [
        slots.index(("total", f, previous, row)) if quantity == "spread" else -1
        for quantity, f, previous, row in slots
    ]
    # A spread reads its total: totals come first (NEEDS lists a spread after its total).
    assert all(t < i for i, t in enumerate(total_of) if t >= 0)

    def table(rows: list[list[int]]) -> np.ndarray:
        return np.array(rows, dtype=np.int64).reshape(len(rows), -1)

    return Program(
        slots=table(
            [
                [QUANTITY_CODES[q] for q, _, _, _ in slots],
                [f for _, f, _, _ in slots],
                [int(p) for _, _, p, _ in slots],
                [r for _, _, _, r in slots],
                total_of,
            ]
        ),
        features=table([[f[i] for f in per_feature] for i in range(5)]),
        default=np.array([f[5] for f in per_feature], dtype=np.float64),
        windows=table([[w.span for w in windows], [w.delay for w in windows]]),
    )


def _seconds(days: float) -> int:
    # Windows are whole seconds: fractional days are rounded to the nearest second.
    seconds = days * DAY
    if not math.isfinite(seconds):
        raise ConfigError(f"a window or delay of {days!r} days is not finite")
    return int(round(seconds))
