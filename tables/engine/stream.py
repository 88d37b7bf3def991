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

import numba
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
        for entity in self.plan.entities.values():
            _compile(entity)

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

    def label_keys(self, record: Mapping[str, Any]) -> list[tuple[str, str]]:
        """(entity, key) of each state that takes the record's fraud label: its entities with
        label-based features, for which it has a key."""
        keys = self.keys(record)
        return [(e, keys[e]) for e in self.label_entities if keys[e] is not None]

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
        features, new_state, _ = self._observe_entity(entity, record, state)
        return features, new_state

    def add_event(
        self, entity: str, record: Mapping[str, Any], state: bytes | None
    ) -> tuple[bytes | None, int]:
        """The entity's new state with the record (None: no key for this entity), and how
        far (seconds) it arrives behind the newest event the state held (0 for an empty
        state): :meth:`observe_entity` without the features (the entity stage's, whose
        features the card stage has read already)."""
        _, new_state, lateness = self._observe_entity(entity, record, state, features=False)
        return new_state, lateness

    def features_against(
        self, entity: str, record: Mapping[str, Any], state: bytes | None
    ) -> dict[str, Any]:
        """One entity's features of the record against a state, which is left as it was:
        what :meth:`observe_entity` answers, without the new state. The card stage reads
        the other entities' features this way from its local replica of their states."""
        return self._observe_entity(entity, record, state, keep=False)[0]

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
        entity: str,
        record: Mapping[str, Any],
        blob: bytes | None,
        keep: bool = True,
        features: bool = True,
    ) -> tuple[dict[str, Any] | None, bytes | None, int]:
        """(features, new state, lateness) of the record against one entity's state; a
        record without the entity's key: NaN features, no state, lateness 0."""
        plan = self.plan.entities[entity]
        if is_missing(_column(record, plan.column)):
            return {f.name: np.nan for f in plan.features}, None, 0
        ts = _time(record)
        tx_hash = id_hash(_column(record, "transaction_id"))
        numeric = {f: _number(record, f) for f in plan.numeric_fields}
        keys = {
            f: hash_value(_column(record, f), numeric_key)
            for f, numeric_key in zip(plan.key_fields, plan.key_fields_numeric)
        }
        return _observe_event(plan, blob, ts, tx_hash, numeric, keys, keep, features)

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


NO_BYTES = np.empty(0, dtype=np.uint8)
# What the compiled call answers besides the features.
OK, NOT_A_STATE, SPANS_TOO_LONG = 0, 1, 2


def _observe_event(
    entity: EntityPlan,
    blob: bytes | None,
    ts: int,
    tx_hash: int,
    numeric: dict[str, float],
    keys: dict[str, int],
    keep: bool = True,
    features: bool = True,
) -> tuple[dict[str, Any] | None, bytes | None, int]:
    """An event's window features (unless `features` is False: None), the entity's new state
    (unless `keep` is False: then the state as it was) and the event's lateness. One
    compiled call: the state's bytes in, the new state's bytes out."""
    program = entity.program
    out = np.empty((len(entity.features), 1), dtype=np.float64)
    status, lateness, appended, new_blob = _observe_packed(
        np.frombuffer(blob, dtype=np.uint8) if blob else NO_BYTES,
        entity.layout,
        packed.columns(entity),
        entity.horizon,
        keep,
        features,
        program.slots,
        program.features,
        program.default,
        program.windows,
        entity.labels,
        ts,
        np.uint64(tx_hash),
        np.array([numeric[f] for f in entity.numeric_fields], dtype=np.float64),
        np.array([keys[f] for f in entity.key_fields], dtype=np.uint64),
        out,
    )
    if status == NOT_A_STATE:
        raise packed.StateError(packed.refusal(entity, blob))
    if status == SPANS_TOO_LONG:
        raise packed.StateError(f"{entity.name} state: events span more than 136 years")
    values = dict(zip(entity.feature_names, out[:, 0].tolist())) if features else None
    if not appended or not keep:  # a redelivery (or only asked): the state stays as it was
        return values, blob, lateness
    return values, new_blob.tobytes(), lateness


def _compile(entity: EntityPlan) -> None:
    """Compiles the entity's compiled code, or loads it from numba's cache (seconds the first
    time on a machine, a fraction of one after), on made-up events: a worker pays for it
    when it starts, not at its first event."""
    numeric = dict.fromkeys(entity.numeric_fields, 1.0)
    keys = dict.fromkeys(entity.key_fields, 1)
    _, blob, _ = _observe_event(entity, None, 1, 1, numeric, keys)
    _, blob, _ = _observe_event(entity, blob, 0, 2, numeric, keys)  # a decoded state, late
    _observe_event(entity, blob, 3, 3, numeric, keys, keep=False)
    _observe_event(entity, blob, 4, 4, numeric, keys, features=False)
    if entity.labels:
        labelled = packed.with_label(packed.decode(entity, blob), 1, 1, 1, True)
        packed.encode(entity, packed.pruned(labelled, entity.horizon))


@numba.njit(cache=True, nogil=True)
def _observe_packed(
    raw,
    layout,
    width,
    horizon,
    keep,
    features_wanted,
    slots,
    features,
    default,
    window_table,
    labels_kept,
    event_ts,
    tx_hash,
    numeric,
    keys,
    out,
):
    """decode, one _step, prune and encode: (status, lateness, appended, new state's bytes;
    empty unless appended and `keep`)."""
    ok, ts, cells, labels = packed.unpack(raw, width, layout)
    if not ok:
        return NOT_A_STATE, 0, False, np.empty(0, dtype=np.uint8)
    event = np.empty(width, dtype=np.uint64)
    event[0] = tx_hash
    for f in range(numeric.size):
        event[1 + f] = numeric[f : f + 1].view(np.uint64)[0]
    for k in range(keys.size):
        event[1 + numeric.size + k] = keys[k]
    n = ts.size
    grown_ts = np.empty(n + 1, dtype=np.int64)
    grown = np.empty((width, n + 1), dtype=np.uint64)
    lateness, appended = _step(
        slots,
        features,
        default,
        window_table,
        numeric.size,
        labels_kept,
        features_wanted,
        ts,
        cells,
        labels,
        event_ts,
        event,
        grown_ts,
        grown,
        out,
    )
    if not appended or not keep:
        return OK, lateness, appended, np.empty(0, dtype=np.uint8)
    kept_ts, kept_cells, kept_labels = packed.prune(grown_ts, grown, labels, horizon)
    fits, blob = packed.pack(kept_ts, kept_cells, kept_labels, layout)
    if not fits:
        return SPANS_TOO_LONG, lateness, appended, np.empty(0, dtype=np.uint8)
    return OK, lateness, appended, blob


@numba.njit(cache=True, nogil=True)
def _step(
    slots,
    features,
    default,
    window_table,
    numeric_fields,
    labels_kept,
    features_wanted,
    ts,
    cells,
    labels,
    event_ts,
    event,
    grown_ts,
    grown,
    out,
):
    """One event against one entity's decoded state: its window features into `out`
    (features, 1; unless not `features_wanted`), the state's events with it appended into
    `grown_ts` and `grown` (one event more than the state); returns how far (seconds) it
    arrives behind the state's newest event and whether it was appended (not a redelivery
    of an event in the state).

    A redelivery is answered from the events that had arrived up to its first arrival. The
    events up to the answered one are put in window order: a stable sort of the times keeps
    arrival order among equal times, which puts the event last among its same-second peers.
    """
    n = ts.size
    lateness = 0
    for i in range(n):
        lateness = max(lateness, ts[i] - event_ts)
    arrival = n
    for i in range(n):
        if cells[0, i] == event[0]:
            arrival = i
            break
    appended = arrival == n
    grown_ts[:n] = ts
    grown_ts[n] = event_ts
    grown[:, :n] = cells
    grown[:, n] = event
    if not features_wanted:
        return lateness, appended

    count = arrival + 1
    in_order = True
    for i in range(1, count):
        if grown_ts[i] < grown_ts[i - 1]:
            in_order = False
            break
    if in_order:
        order_ts = grown_ts[:count].copy()
        events = np.ascontiguousarray(grown[:, :count])
        position = arrival
    else:
        by_time = np.argsort(grown_ts[:count], kind="mergesort")
        order_ts = grown_ts[by_time]
        events = np.empty((grown.shape[0], count), dtype=np.uint64)
        for c in range(grown.shape[0]):
            events[c] = grown[c][by_time]
        position = 0
        for i in range(count):
            if order_ts[i] <= grown_ts[arrival]:
                position += 1
        position -= 1
    numeric = np.empty((numeric_fields, count), dtype=np.float64)
    for f in range(numeric_fields):
        numeric[f] = events[1 + f].copy().view(np.float64)
    keys = np.ascontiguousarray(events[1 + numeric_fields :])
    none = np.empty(0, dtype=np.int64)  # no floor or group (one key), no labels
    fraud_known = none
    if labels_kept:
        # When each event's fraud label became known (none: NO_FRAUD), by transaction id.
        fraud_known = np.full(count, windows.NO_FRAUD, dtype=np.int64)
        label_ids = labels[0].copy().view(np.uint64)
        by_id = np.argsort(label_ids)
        sorted_ids = label_ids[by_id]
        for i in range(count):
            j = np.searchsorted(sorted_ids, events[0, i])
            if j < sorted_ids.size and sorted_ids[j] == events[0, i]:
                fraud_known[i] = labels[2, by_id[j]]
    windows.kernel(
        slots,
        features,
        default,
        window_table,
        order_ts,
        order_ts,
        none,
        none,
        numeric,
        keys,
        fraud_known,
        np.array([position], dtype=np.int64),
        out,
    )
    return lateness, appended


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
