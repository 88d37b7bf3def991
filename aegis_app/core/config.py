"""The user's schema and features, declared in one config file (TOML or YAML).

A config file says three things (configs/handbook.toml is the default, configs/sparkov.toml
the worked example for another schema; docs/FEATURES.md defines every feature kind):

- ``[source]``: which field of the user's records is the transaction id, the card, the
  merchant, the amount, the timestamp and the label, and the extra fields with their
  types (categorical, numeric, boolean, date, or a latitude/longitude pair);
- ``[entities]``: what state is kept for (card and merchant at least; any other field,
  e.g. a device or an e-mail, may be one);
- ``[[features]]``: the features, each a kind (window statistics, distinct values, time
  since the previous transaction, novelty, label-based risk, calendar, distance, age, ...)
  applied to an entity, a field and windows.

:func:`load` reads and checks a file; every problem is reported with the key it concerns
(``features[3].window_days: ...``), never as a parser's stack trace.
"""

from __future__ import annotations

import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

# The roles every source declares, and the name a feature uses to refer to each.
ROLES = ("transaction_id", "card", "merchant", "amount", "timestamp", "label")
FIELD_TYPES = ("categorical", "numeric", "boolean", "date", "latlon")
TIMESTAMP_FORMATS = ("epoch_s", "epoch_ms")  # or a strftime format with a time zone

# Feature kinds. Window kinds look at an entity's transactions in a time window; the
# per-transaction kinds at the transaction alone.
WINDOW_STATS = ("count", "sum", "mean", "std", "min", "max")
WINDOW_KINDS = (*WINDOW_STATS, "distinct", "since_previous", "ratio", "zscore", "novelty")
LABEL_KINDS = ("fraud_share",)
TRANSACTION_KINDS = ("value", "hour", "weekend", "night", "day_of_week", "category")
PAIR_KINDS = ("distance", "age")
KINDS = (*WINDOW_KINDS, *LABEL_KINDS, *TRANSACTION_KINDS, *PAIR_KINDS)


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the key and the problem."""


DEFAULT_PRESET = "handbook.toml"


def preset_dirs() -> list[Path]:
    """Where the shipped presets are: the checkout's configs/, or where a wheel installs
    them (setup.cfg data_files)."""
    return [
        Path(__file__).resolve().parents[2] / "configs",
        Path(sys.prefix) / "share/aegis/configs",
    ]


def resolve(path: str | Path | None) -> Path:
    """The config file to use: `path`, else the default preset."""
    if path is not None:
        return Path(path)
    for folder in preset_dirs():
        if (folder / DEFAULT_PRESET).exists():
            return folder / DEFAULT_PRESET
    raise ConfigError(
        f"no config file: the default preset {DEFAULT_PRESET} is not in "
        f"{' or '.join(map(str, preset_dirs()))}; pass --config FILE or set AEGIS_CONFIG"
    )


@dataclass(frozen=True)
class Timestamp:
    field: str
    format: str = "epoch_s"  # "epoch_s", "epoch_ms" or a strftime format
    timezone: str = "UTC"  # for a strftime format without an offset


@dataclass(frozen=True)
class Source:
    transaction_id: str
    card: str
    merchant: str
    amount: str
    timestamp: Timestamp
    label: str | None = None
    # Extra fields: name -> type; a latlon field names its two columns in `pairs`.
    fields: dict[str, str] = field(default_factory=dict)
    # latlon name -> (latitude column, longitude column); date name -> strftime format.
    pairs: dict[str, tuple[str, str]] = field(default_factory=dict)
    date_formats: dict[str, str] = field(default_factory=dict)

    def column(self, name: str) -> str:
        """The source column a role name or a field name stands for."""
        if name in ROLES:
            value = getattr(self, name)
            return value.field if isinstance(value, Timestamp) else value
        return name

    def columns(self) -> list[str]:
        """Every column a record must (or may, for the label) carry."""
        out = [self.column(role) for role in ROLES if getattr(self, role) is not None]
        for name, kind in self.fields.items():
            out.extend(self.pairs[name] if kind == "latlon" else [name])
        return list(dict.fromkeys(out))


@dataclass(frozen=True)
class Feature:
    name: str
    kind: str
    entity: str | None = None  # window and label kinds
    field: str | None = None  # the field it reads (amount, a numeric or categorical field)
    window_days: float | None = None
    # Label kinds and delayed windows: the window ends this many days before the
    # transaction (labels: only those known at the transaction's time count).
    delay_days: float = 0.0
    # since_previous: the value when the entity has no earlier transaction in the window.
    default: float | None = None
    # night: the last hour (inclusive) that counts as night.
    night_end_hour: int = 6
    # distance: the second latlon field (the first is `field`).
    other: str | None = None


@dataclass(frozen=True)
class Config:
    source: Source
    entities: dict[str, str]  # entity name -> source field (role name or extra field)
    features: tuple[Feature, ...]
    label_delay_days: int = 7
    # The most days of history any entity may keep ([state] horizon_days); None: as much
    # as the features need.
    max_horizon_days: float | None = None
    path: Path | None = None

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    def horizon_days(self, entity: str) -> float:
        """How many days of an entity's history its features look at: every window plus
        its delay; a state is bounded by this plus one more label delay (late arrivals)."""
        spans = [(f.window_days or 0.0) + f.delay_days for f in self.features if f.entity == entity]
        return max(spans, default=0.0)


def load(path: str | Path) -> Config:
    """The checked config in `path` (.toml, .yaml or .yml)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror})") from None
    try:
        if path.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        elif path.suffix == ".toml":
            data = tomllib.loads(text)
        else:
            raise ConfigError(f"{path}: a config file is .toml, .yaml or .yml")
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: not valid {path.suffix[1:].upper()}: {exc}") from None
    try:
        return parse(data, path)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def parse(data: Any, path: Path | None = None) -> Config:
    """A checked Config from the file's parsed content."""
    if not isinstance(data, dict):
        raise ConfigError("expected a table with [source], [entities] and [[features]]")
    _only(data, ("source", "entities", "features", "labels", "state"), "")
    source = _source(_table(data, "source"))
    labels = data.get("labels", {})
    _only(labels, ("delay_days",), "labels.")
    delay = _number(labels.get("delay_days", 7), "labels.delay_days", minimum=0)
    entities = _entities(_table(data, "entities"), source)
    raw_features = data.get("features")
    if not isinstance(raw_features, list) or not raw_features:
        raise ConfigError("features: declare at least one [[features]] entry")
    features: list[Feature] = []
    for i, raw in enumerate(raw_features):
        features.extend(_features(raw, f"features[{i}]", source, entities, delay))
    seen: dict[str, int] = {}
    for i, feature in enumerate(features):
        if feature.name in seen:
            raise ConfigError(f"features: the name {feature.name!r} is declared twice")
        seen[feature.name] = i
    state = data.get("state", {})
    _only(state, ("horizon_days",), "state.")
    horizon = state.get("horizon_days")
    if horizon is not None:
        horizon = _number(horizon, "state.horizon_days", minimum=0, strict=True)
        for feature in features:
            span = (feature.window_days or 0.0) + feature.delay_days
            if span > horizon:
                raise ConfigError(
                    f"features ({feature.name}): its window ({feature.window_days:g} days) "
                    f"plus delay ({feature.delay_days:g}) reach {span:g} days back, beyond "
                    f"state.horizon_days = {horizon:g}"
                )
    return Config(source, entities, tuple(features), int(delay), horizon, path)


# --------------------------------------------------------------------------- source


def _source(data: dict) -> Source:
    _only(data, (*ROLES, "fields"), "source.")
    roles: dict[str, Any] = {}
    for role in ROLES:
        if role == "timestamp":
            continue
        value = data.get(role)
        if value is None:
            if role != "label":
                raise ConfigError(f"source.{role}: missing (the column holding the {role})")
            continue
        roles[role] = _name(value, f"source.{role}")
    stamp = data.get("timestamp")
    if stamp is None:
        raise ConfigError("source.timestamp: missing (the column holding the time)")
    if isinstance(stamp, str):
        stamp = {"field": stamp}
    if not isinstance(stamp, dict):
        raise ConfigError("source.timestamp: a column name or a table {field, format, timezone}")
    _only(stamp, ("field", "format", "timezone"), "source.timestamp.")
    timestamp = Timestamp(
        field=_name(stamp.get("field"), "source.timestamp.field"),
        format=str(stamp.get("format", "epoch_s")),
        timezone=str(stamp.get("timezone", "UTC")),
    )
    _check_time_format(timestamp.format, "source.timestamp.format")
    _check_zone(timestamp.timezone, "source.timestamp.timezone")
    fields: dict[str, str] = {}
    pairs: dict[str, tuple[str, str]] = {}
    date_formats: dict[str, str] = {}
    for name, spec in (data.get("fields") or {}).items():
        key = f"source.fields.{name}"
        if name in ROLES:
            raise ConfigError(f"{key}: {name!r} is a role name; give the field another name")
        kind = spec if isinstance(spec, str) else (spec or {}).get("type")
        if kind not in FIELD_TYPES:
            raise ConfigError(f"{key}: type {kind!r} is not one of {', '.join(FIELD_TYPES)}")
        if kind == "latlon":
            if not isinstance(spec, dict):
                raise ConfigError(f"{key}: a latlon field is {{type, lat, lon}}")
            _only(spec, ("type", "lat", "lon"), f"{key}.")
            pairs[name] = (
                _name(spec.get("lat"), f"{key}.lat"),
                _name(spec.get("lon"), f"{key}.lon"),
            )
        elif kind == "date":
            fmt = spec.get("format", "%Y-%m-%d") if isinstance(spec, dict) else "%Y-%m-%d"
            _check_time_format(fmt, f"{key}.format")
            date_formats[name] = fmt
        elif isinstance(spec, dict):
            _only(spec, ("type",), f"{key}.")
        fields[name] = kind
    return Source(
        timestamp=timestamp, fields=fields, pairs=pairs, date_formats=date_formats, **roles
    )


def _check_time_format(fmt: str, key: str) -> None:
    if fmt in TIMESTAMP_FORMATS:
        return
    if "%" not in fmt:
        raise ConfigError(
            f"{key}: {fmt!r} is neither {' nor '.join(TIMESTAMP_FORMATS)} nor a strftime "
            "format such as '%Y-%m-%d %H:%M:%S'"
        )


def _check_zone(zone: str, key: str) -> None:
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{key}: unknown time zone {zone!r} (e.g. UTC, Europe/Paris)") from None


def _entities(data: dict, source: Source) -> dict[str, str]:
    entities: dict[str, str] = {}
    for name, column in data.items():
        key = f"entities.{name}"
        column = _name(column, key)
        if column not in ROLES and source.fields.get(column) not in ("categorical", "numeric"):
            raise ConfigError(
                f"{key}: {column!r} is neither a role ({', '.join(ROLES)}) nor a categorical "
                "or numeric field of [source.fields]"
            )
        entities[name] = column
    for required in ("card", "merchant"):
        if required not in entities.values():
            raise ConfigError(
                f'entities: state must be kept for the {required} (e.g. {required} = "{required}")'
            )
    return entities


# --------------------------------------------------------------------------- features


def _features(
    raw: Any, key: str, source: Source, entities: dict[str, str], delay: float
) -> list[Feature]:
    """One [[features]] entry: a single feature, or one per window of `window_days = [..]`."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{key}: expected a table")
    _only(
        raw,
        (
            "name",
            "kind",
            "entity",
            "field",
            "window_days",
            "delay_days",
            "default",
            "night_end_hour",
            "other",
        ),
        f"{key}.",
    )
    kind = raw.get("kind")
    if kind not in KINDS:
        raise ConfigError(f"{key}.kind: {kind!r} is not one of {', '.join(KINDS)}")
    windows = raw.get("window_days")
    if isinstance(windows, list):
        if not windows:
            raise ConfigError(f"{key}.window_days: an empty list")
        if "name" in raw and "{window}" not in str(raw["name"]):
            raise ConfigError(
                f"{key}.name: with several windows the name needs a {{window}} placeholder"
            )
        return [
            _feature({**raw, "window_days": w}, f"{key}.window_days[{i}]", source, entities, delay)
            for i, w in enumerate(windows)
        ]
    return [_feature(raw, key, source, entities, delay)]


def _feature(
    raw: dict, key: str, source: Source, entities: dict[str, str], delay: float
) -> Feature:
    kind = raw["kind"]
    entity = raw.get("entity")
    column = raw.get("field")
    window = raw.get("window_days")
    delay_days = raw.get("delay_days", delay if kind in LABEL_KINDS else 0.0)
    if kind in WINDOW_KINDS or kind in LABEL_KINDS:
        if entity not in entities:
            raise ConfigError(
                f"{key}.entity: {entity!r} is not a declared entity ({', '.join(entities)})"
            )
        if window is None:
            raise ConfigError(f"{key}.window_days: missing (the window, in days)")
        window = _number(window, f"{key}.window_days", minimum=0, strict=True)
        delay_days = _number(delay_days, f"{key}.delay_days", minimum=0)
        if kind in LABEL_KINDS and delay_days < delay:
            raise ConfigError(
                f"{key}.delay_days: {delay_days:g} is shorter than labels.delay_days "
                f"({delay:g}): labels would be used before they are known"
            )
    elif entity is not None or window is not None:
        raise ConfigError(f"{key}: a {kind!r} feature has no entity or window")
    needs_numeric = kind in ("sum", "mean", "std", "min", "max", "ratio", "zscore", "value")
    needs_field = needs_numeric or kind in ("distinct", "novelty", "category", "distance", "age")
    if needs_field:
        column = _name(
            column if column is not None else "amount" if needs_numeric else None, f"{key}.field"
        )
        _check_field(kind, column, source, f"{key}.field")
    elif column is not None:
        raise ConfigError(f"{key}.field: a {kind!r} feature reads no field")
    other = raw.get("other")
    if kind == "distance":
        other = _name(other, f"{key}.other")
        _check_field(kind, other, source, f"{key}.other")
    hour = raw.get("night_end_hour", 6)
    if not isinstance(hour, int) or not 0 <= hour <= 23:
        raise ConfigError(f"{key}.night_end_hour: {hour!r} is not an hour 0-23")
    default = raw.get("default")
    if default is not None:
        default = _number(default, f"{key}.default")
    name = raw.get("name") or _default_name(kind, entity, column, window, other)
    if not isinstance(name, str):
        raise ConfigError(f"{key}.name: expected text")
    if window is not None:
        name = name.replace("{window}", f"{window:g}")
    return Feature(
        name=name,
        kind=kind,
        entity=entity,
        field=column,
        window_days=window,
        delay_days=float(delay_days),
        default=default,
        night_end_hour=hour,
        other=other,
    )


def _check_field(kind: str, column: str, source: Source, key: str) -> None:
    """The field must exist and have a type that fits the kind."""
    if column in ROLES:
        if getattr(source, column, None) is None:
            raise ConfigError(f"{key}: the source declares no {column}")
        types = {"amount": "numeric", "label": "numeric", "timestamp": "date"}
        ftype = types.get(column, "categorical")
    elif column in source.fields:
        ftype = source.fields[column]
    else:
        known = [*ROLES, *source.fields]
        raise ConfigError(f"{key}: unknown field {column!r} (known: {', '.join(known)})")
    wanted = {
        "sum": ("numeric",),
        "mean": ("numeric",),
        "std": ("numeric",),
        "min": ("numeric",),
        "max": ("numeric",),
        "ratio": ("numeric",),
        "zscore": ("numeric",),
        "value": ("numeric", "boolean"),
        "distinct": ("categorical", "numeric", "boolean"),
        "novelty": ("categorical", "numeric", "boolean"),
        "category": ("categorical", "boolean"),
        "distance": ("latlon",),
        "age": ("date",),
    }[kind]
    if ftype not in wanted:
        raise ConfigError(
            f"{key}: {column!r} is {ftype}; a {kind!r} feature needs {' or '.join(wanted)}"
        )


def _default_name(
    kind: str, entity: str | None, column: str | None, window: float | None, other: str | None
) -> str:
    if kind in TRANSACTION_KINDS and kind not in ("value", "category"):
        return f"tx_{kind}"
    if kind in ("value", "category"):
        return str(column)
    if kind == "distance":
        return f"distance_{column}_{other}"
    if kind == "age":
        return f"age_{column}"
    span = f"_{window:g}d"
    if kind in ("count", "since_previous", "fraud_share"):
        return f"{entity}_{kind}{span}"
    return f"{entity}_{column}_{kind}{span}"


# --------------------------------------------------------------------------- helpers


def _table(data: dict, key: str) -> dict:
    value = data.get(key)
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: missing (a [{key}] table)")
    return value


def _only(data: Any, allowed: tuple[str, ...], prefix: str) -> None:
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a table")
    unknown = [k for k in data if k not in allowed]
    if unknown:
        raise ConfigError(f"{prefix}{unknown[0]}: unknown key (allowed here: {', '.join(allowed)})")


def _name(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{key}: expected a column name, got {value!r}")
    return value


def _number(value: Any, key: str, minimum: float | None = None, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if minimum is not None and (value < minimum or (strict and value == minimum)):
        relation = "above" if strict else "at least"
        raise ConfigError(f"{key}: {value!r} must be {relation} {minimum:g}")
    return float(value)
