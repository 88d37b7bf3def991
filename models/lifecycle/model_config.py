"""The part of the user's config a model depends on, as recorded in its manifest.

A model is only valid for the features it was trained on: their names, order, kinds,
windows and the source columns they are computed from. `describe_config` gives that part
of a Config as plain JSON with a hash; `config_differences` says, in words, how a
recorded description differs from a config (empty when the model fits it).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import fields

from aegis_app.core.config import ROLES, Config, Feature

# The Feature attributes that change what a feature's value means.
FEATURE_ATTRIBUTES = tuple(f.name for f in fields(Feature) if f.name != "name")
# How each attribute is named in a difference message, and its unit.
_WORDS = {
    "kind": ("kind", ""),
    "entity": ("entity", ""),
    "field": ("field", ""),
    "window_days": ("window", "day"),
    "delay_days": ("delay", "day"),
    "default": ("default", ""),
    "night_end_hour": ("night end hour", ""),
    "other": ("other field", ""),
}


def running_config() -> Config:
    """The config this process runs: AEGIS_CONFIG (which `aegis --config` sets), else the
    default preset (Settings.load_config())."""
    from aegis_app.core.settings import Settings

    return Settings.from_env().load_config()


def describe_config(config: Config) -> dict:
    """The model-relevant part of `config` (features, source columns, entities, label
    delay) and its SHA-256 `hash`, as JSON types."""
    source = config.source
    body = {
        "features": [
            {"name": f.name, **{a: getattr(f, a) for a in FEATURE_ATTRIBUTES}}
            for f in config.features
        ],
        "source": {
            "roles": {role: source.column(role) for role in ROLES if getattr(source, role)},
            "timestamp_format": source.timestamp.format,
            "timezone": source.timestamp.timezone,
            "fields": dict(source.fields),
            "pairs": {name: list(pair) for name, pair in source.pairs.items()},
            "date_formats": dict(source.date_formats),
        },
        "entities": dict(config.entities),
        "label_delay_days": config.label_delay_days,
    }
    return {**body, "hash": _hash(body)}


def _hash(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def config_differences(recorded: dict, config: Config) -> list[str]:
    """How a model's recorded config differs from `config` ("in the model" vs "here")."""
    current = describe_config(config)
    if recorded.get("hash") == current["hash"]:
        return []
    out: list[str] = []
    theirs = {f["name"]: f for f in recorded.get("features", [])}
    ours = {f["name"]: f for f in current["features"]}
    out += [f"feature {n} is in the model but not in this config" for n in theirs if n not in ours]
    out += [f"feature {n} is in this config but not in the model" for n in ours if n not in theirs]
    for name in (n for n in theirs if n in ours):
        for attribute in FEATURE_ATTRIBUTES:
            before, now = theirs[name].get(attribute), ours[name].get(attribute)
            if before != now:
                word, unit = _WORDS.get(attribute, (attribute, ""))
                out.append(
                    f"feature {name}: {word} {_show(before, unit)} in the model, "
                    f"{_show(now, unit)} here"
                )
    shared_theirs = [n for n in theirs if n in ours]
    shared_ours = [n for n in ours if n in theirs]
    if shared_theirs != shared_ours:
        out.append("the features are in another order than in the model")
    for section in ("source", "entities"):
        before, now = _flat(recorded.get(section, {})), _flat(current[section])
        for key in sorted(set(before) | set(now)):
            if before.get(key) != now.get(key):
                out.append(
                    f"{section} {key}: {_show(before.get(key))} in the model, "
                    f"{_show(now.get(key))} here"
                )
    if recorded.get("label_delay_days") != current["label_delay_days"]:
        out.append(
            f"labels delay: {_show(recorded.get('label_delay_days'), 'day')} in the model, "
            f"{_show(current['label_delay_days'], 'day')} here"
        )
    if not out:  # same content, another hash: a description from another code version
        out.append("the recorded config hash does not match this config")
    return out


def _flat(section: dict) -> dict:
    """The source's role columns as keys of their own (a message per role)."""
    roles = section.get("roles")
    if not isinstance(roles, dict):
        return dict(section)
    rest = {k: v for k, v in section.items() if k != "roles"}
    return {**{f"{role} column": column for role, column in roles.items()}, **rest}


def _show(value: object, unit: str = "") -> str:
    if value is None:
        return "none"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if unit:
        return f"{value} {unit}" + ("" if value == 1 else "s")
    return repr(value) if isinstance(value, str) else json.dumps(value, sort_keys=True)
