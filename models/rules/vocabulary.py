"""The names a rule may use, their types, and their values for one transaction.

A rule sees one flat namespace (README "Rules"):

- the normalised record: ``transaction_id``, ``card``, ``merchant`` (text), ``amount``,
  ``ts`` (epoch seconds UTC) and ``hour`` (0-23, UTC);
- the config's extra fields by their configured names (a latitude/longitude field is a
  map: ``home.lat``, ``home.lon``; a date is epoch seconds);
- every feature by its configured name (categorical ones are text, the rest numbers);
- ``lists``, the named lists (``card in lists.vip_cards``).

Every number is a double (CEL does not mix int and double in arithmetic; see
models.rules.expression), a missing value is ``null``. When a feature has the name of a
record field (Sparkov's ``amount`` feature is the amount itself), the record's value is
the one a rule sees.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aegis_app.core.config import Config

STRING, NUMBER, BOOL, LATLON = "string", "number", "bool", "latlon"
LISTS = "lists"
# CEL's reserved words and literals: no field can be reached under these names.
RESERVED = frozenset(
    "true false null in as break const continue else for function if import let loop "
    "package namespace return var void while".split()
)
IDENTIFIER = re.compile(r"^[_a-zA-Z][_a-zA-Z0-9]*$")
_FIELD_TYPES = {"categorical": STRING, "numeric": NUMBER, "boolean": BOOL, "date": NUMBER}
_CORE = {
    "transaction_id": STRING,
    "card": STRING,
    "merchant": STRING,
    "amount": NUMBER,
    "ts": NUMBER,
    "hour": NUMBER,
}
# Numbers are 1.0, not 0.0: 0.0 / 0.0 is NaN, and CEL refuses to compare NaN, which would
# make `amount / card_amount_mean_30d > 5` look like a type error.
_SAMPLES = {STRING: "", NUMBER: 1.0, BOOL: False, LATLON: {"lat": 1.0, "lon": 1.0}}


@dataclass(frozen=True)
class Vocabulary:
    """Name -> type of every name a rule may use, and the names of the defined lists."""

    names: Mapping[str, str]
    lists: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def from_config(cls, config: Config, lists: Iterable[str] = ()) -> Vocabulary:
        names: dict[str, str] = {}
        # Later entries win: features, then extra fields, then the record's own names.
        for feature in config.features:
            names[feature.name] = STRING if feature.kind == "category" else NUMBER
        for name, kind in config.source.fields.items():
            names[name] = LATLON if kind == "latlon" else _FIELD_TYPES.get(kind, STRING)
        names.update(_CORE)
        usable = {
            name: kind
            for name, kind in names.items()
            if IDENTIFIER.match(name) and name not in RESERVED and name != LISTS
        }
        return cls(usable, frozenset(lists))

    def with_lists(self, lists: Iterable[str]) -> Vocabulary:
        return Vocabulary(self.names, frozenset(lists))

    def sample(self) -> dict[str, Any]:
        """A value of each name's type: what validation runs an expression on once."""
        return {name: _SAMPLES[kind] for name, kind in self.names.items()}

    def variables(self, record: Mapping[str, Any], features: Mapping[str, Any]) -> dict[str, Any]:
        """The CEL values of one transaction: a normalised record (or a stored decision's
        ids, amount, ts and its flat ``fields``) and its features."""
        source = {**features, **record}
        ts = _number(record.get("ts"))
        source["hour"] = None if ts is None else float(int(ts) // 3600 % 24)
        out: dict[str, Any] = {}
        for name, kind in self.names.items():
            if kind == LATLON:
                out[name] = {
                    "lat": _number(source.get(f"{name}.lat")),
                    "lon": _number(source.get(f"{name}.lon")),
                }
            else:
                out[name] = _CONVERT[kind](source.get(name))
        return out

    def row_variables(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """`variables` of a stored decision row (its extra fields are under ``fields``)."""
        record = {**(row.get("fields") or {})}
        for name in ("transaction_id", "card", "merchant", "amount", "ts"):
            record[name] = row.get(name)
        return self.variables(record, row.get("features") or {})


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, str):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def _bool(value: Any) -> bool | None:
    return None if value is None else bool(value)


_CONVERT = {STRING: _text, NUMBER: _number, BOOL: _bool}


def as_list_item(value: Any) -> str | None:
    """The text a value is compared as with a list's items (lists hold text): ids and
    categories as they are, a whole number without a decimal point, None for missing."""
    if value is None or isinstance(value, dict):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)
