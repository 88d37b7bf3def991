"""The stream path: one normalised record at a time against each entity's packed state.

The caller keeps one state (bytes) per entity key (:meth:`StreamEngine.keys` gives the
keys of a record), hands the record's states to :meth:`StreamEngine.observe` and stores
the states it returns; fraud labels go to :meth:`StreamEngine.observe_label` of each
entity with label-based features. Arrival order is the order of the calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from aegis_app.core.config import Config
from tables.engine import state as packed
from tables.engine import transaction, windows
from tables.engine.keys import hash_value, id_hash, is_missing, key_text
from tables.engine.plan import EntityPlan, Plan, RecordError, column_of, compile_plan

Features = dict[str, float | str | None]


@dataclass(frozen=True)
class StateSize:
    events: int
    labels: int
    bytes: int


class StreamEngine:
    def __init__(self, config: Config | Plan) -> None:
        self.plan = config if isinstance(config, Plan) else compile_plan(config)
        self._columns = _transaction_columns(self.plan)
        self._key_columns = tuple(
            (name, e.column, e.key_is_numeric) for name, e in self.plan.entities.items()
        )

    @property
    def entities(self) -> tuple[str, ...]:
        """Entities that keep state."""
        return tuple(self.plan.entities)

    @property
    def label_entities(self) -> tuple[str, ...]:
        """Entities whose state takes fraud labels."""
        return tuple(name for name, e in self.plan.entities.items() if e.labels)

    def keys(self, record: Mapping[str, Any]) -> dict[str, str | None]:
        """The state key of each stateful entity for this record (None: the key is missing,
        the entity's features are NaN and no state is kept)."""
        keys: dict[str, str | None] = {}
        for name, column, numeric in self._key_columns:  # every decision asks: kept lean
            value = _column(record, column)
            keys[name] = (
                value if value.__class__ is str and not numeric else key_text(value, numeric)
            )
        return keys

    def observe(
        self, record: Mapping[str, Any], states: Mapping[str, bytes | None]
    ) -> tuple[Features, dict[str, bytes]]:
        """The record's features, and the new state of each entity whose key it has.

        A transaction id already in an entity's state is a redelivery: it is answered as
        the first time (from the events that had arrived before it) and not counted again.
        """
        parts: dict[str, Any] = {}
        new_states: dict[str, bytes] = {}
        for name in self.plan.entities:
            values, state = self.observe_entity(name, record, states.get(name))
            parts.update(values)
            if state is not None:
                new_states[name] = state
        parts.update(self.transaction_features(record))
        return self.assemble(parts), new_states

    def observe_entity(
        self, entity: str, record: Mapping[str, Any], state: bytes | None
    ) -> tuple[dict[str, Any], bytes | None]:
        """One entity's features of the record and its new state (None: the record has no
        key for this entity; its features are NaN and no state is kept). The stream calls
        this where the entity's state lives, then :meth:`assemble` once every part is in."""
        features, new_state, _ = self.observe_entity_arrival(entity, record, state)
        return features, new_state

    def observe_entity_arrival(
        self, entity: str, record: Mapping[str, Any], state: bytes | None
    ) -> tuple[dict[str, Any], bytes | None, int]:
        """As :meth:`observe_entity`, and how far (seconds) the record arrives behind the
        newest event the state held (0 for an empty state): read off the same decode, so the
        stream measures lateness without decoding the state twice."""
        plan = self.plan.entities[entity]
        if is_missing(_column(record, plan.column)):
            return {f.name: np.nan for f in plan.features}, None, 0
        ts = _time(record)
        tx_hash = id_hash(_column(record, "transaction_id"))
        return self._observe_entity(plan, state, record, ts, tx_hash)

    def transaction_features(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """The per-transaction features (calendar, values, categories, distance, age)."""
        columns = {c: np.array([_column(record, c)]) for c in self._columns}
        stamp = np.array([_time(record)], dtype=np.int64)
        evaluated = transaction.evaluate(self.plan.transaction_features, columns, stamp)
        return {name: values[0] for name, values in evaluated.items()}

    def assemble(self, parts: Mapping[str, Any]) -> Features:
        """The feature dict in the config's order from every part (entities, transaction):
        numbers as float, categorical features as text (None when missing)."""
        features: Features = {}
        for name in self.plan.names:
            value = parts[name]
            if name in self.plan.text_features:
                features[name] = None if is_missing(value) else value
            else:
                features[name] = np.nan if value is None else float(value)
        return features

    def entity_of_column(self, column: str) -> str | None:
        """The entity kept for a normalised column (e.g. "card"), if any."""
        for name, plan in self.plan.entities.items():
            if plan.column == column:
                return name
        return None

    def observe_label(
        self,
        entity: str,
        state: bytes | None,
        transaction_id: Any,
        tx_ts: int,
        known_at: int,
        fraud: bool,
    ) -> bytes:
        """The entity's state with a transaction's fraud label (a later label replaces an
        earlier one; a genuine label removes a fraud). It counts from `known_at` on."""
        plan = self._label_entity(entity)
        current = packed.decode(plan, state)
        updated = packed.with_label(
            current, id_hash(transaction_id), int(tx_ts), int(known_at), bool(fraud)
        )
        return packed.encode(plan, packed.pruned(updated, plan.horizon))

    def state_size(self, entity: str, state: bytes | None) -> StateSize:
        """Events, labels and bytes of a state (for benchmarks and monitoring)."""
        decoded = packed.decode(self.plan.entities[entity], state)
        return StateSize(len(decoded), decoded.labels.shape[1], len(state or b""))

    def latest_event(self, entity: str, state: bytes | None) -> int | None:
        """The time of the newest event in a state (None when it has none)."""
        decoded = packed.decode(self.plan.entities[entity], state)
        return int(decoded.ts.max()) if len(decoded) else None

    # ------------------------------------------------------------------ internals

    def _observe_entity(
        self,
        entity: EntityPlan,
        blob: bytes | None,
        record: Mapping[str, Any],
        ts: int,
        tx_hash: int,
    ) -> tuple[dict[str, np.ndarray], bytes, int]:
        current = packed.decode(entity, blob)
        lateness = max(0, int(current.ts.max()) - ts) if len(current) else 0
        seen = np.flatnonzero(current.ids == np.uint64(tx_hash))
        if seen.size:
            values = _evaluate(entity, current, int(seen[0]))
            return values, blob if blob else packed.encode(entity, current), lateness
        numeric = {f: _number(record, f) for f in entity.numeric_fields}
        keys = {
            f: hash_value(_column(record, f), numeric_key)
            for f, numeric_key in zip(entity.key_fields, entity.key_fields_numeric)
        }
        grown = packed.append(current, ts, packed.event_cells(entity, tx_hash, numeric, keys))
        values = _evaluate(entity, grown, len(grown) - 1)
        return values, packed.encode(entity, packed.pruned(grown, entity.horizon)), lateness

    def _label_entity(self, entity: str) -> EntityPlan:
        plan = self.plan.entities.get(entity)
        if plan is None or not plan.labels:
            raise ValueError(
                f"entity {entity!r} has no label-based features (those that do: "
                f"{', '.join(self.label_entities) or 'none'})"
            )
        return plan


def _transaction_columns(plan: Plan) -> tuple[str, ...]:
    names: list[str] = []
    for feature in plan.transaction_features:
        for field in (feature.field, feature.other):
            if field is None:
                continue
            if feature.kind == "distance":
                names += [f"{field}.lat", f"{field}.lon"]
            else:
                names.append(column_of(field))
    return tuple(dict.fromkeys(names))


def _evaluate(plan: EntityPlan, current: packed.EntityState, arrival: int) -> dict[str, Any]:
    """The entity's window features of the event at arrival index `arrival`, from the events
    that arrived up to it, put in window order."""
    count = arrival + 1
    ts = current.ts[:count]
    cells = current.cells[:, :count]
    if count > 1 and bool((ts[1:] < ts[:-1]).any()):
        # Out-of-order arrivals: a stable sort keeps arrival order among equal times, which
        # puts the event last among its same-second peers.
        order = np.argsort(ts, kind="stable")
        ts, cells = ts[order], cells[:, order]
        position = int(np.count_nonzero(ts <= current.ts[arrival])) - 1
    else:
        position = arrival
    fraud_known = None
    if plan.labels:
        fraud_known = np.full(count, windows.NO_FRAUD, dtype=np.int64)
        label_ids = current.label_ids
        if label_ids.size:
            ids = cells[0]
            by_id = np.argsort(ids)
            found = np.minimum(np.searchsorted(ids[by_id], label_ids), count - 1)
            match = ids[by_id][found] == label_ids
            fraud_known[by_id[found[match]]] = current.label_known[match]
    events = windows.Events(
        ts=ts,
        order=ts,
        floor=None,
        group=None,
        numeric=cells[1 : 1 + len(plan.numeric_fields)].view(np.float64),
        keys=cells[1 + len(plan.numeric_fields) :],
        fraud_known=fraud_known,
    )
    values = windows.evaluate(plan, events, np.array([position]))
    return {name: v[0] for name, v in values.items()}


def _column(record: Mapping[str, Any], name: str) -> Any:
    try:
        return record[name]
    except KeyError:
        raise RecordError(
            f"record: no {name!r} column (the engine reads normalised records: "
            "aegis_app.core.source)"
        ) from None


def _time(record: Mapping[str, Any]) -> int:
    value = _column(record, "ts")
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise RecordError(f"record: ts must be int epoch seconds, got {value!r}")
    return int(value)


def _number(record: Mapping[str, Any], name: str) -> float:
    value = _column(record, name)
    if is_missing(value):
        return float("nan")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise RecordError(f"record: {name!r} must be a number, got {value!r}") from None


__all__ = ["RecordError", "StateSize", "StreamEngine"]
