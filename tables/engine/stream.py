"""The stream path: normalised records against each entity's packed state, one at a time
or a whole fetch per entity in one compiled call (:meth:`StreamEngine.observe_many`).

The caller keeps one state (bytes) per entity key (:meth:`StreamEngine.keys` gives the
keys of a record), hands the record's states to :meth:`StreamEngine.observe` and stores
the states it returns; fraud labels go to :meth:`StreamEngine.observe_label` of each
entity with label-based features. Arrival order is the order of the calls.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
from numba.typed import List

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
        one = self._one(entity, record, state)
        return one.feature_dict(0), one.state_after(0, 0, state)

    def add_event(
        self, entity: str, record: Mapping[str, Any], state: bytes | None
    ) -> tuple[bytes | None, int]:
        """The entity's new state with the record (None: no key for this entity), and how
        far (seconds) it arrives behind the newest event the state held (0 for an empty
        state): :meth:`observe_entity` without the features (the entity stage's, whose
        features the card stage has read already)."""
        one = self._one(entity, record, state, features=False)
        return one.state_after(0, 0, state), int(one.lateness[0])

    def features_against(
        self, entity: str, record: Mapping[str, Any], state: bytes | None
    ) -> dict[str, Any]:
        """One entity's features of the record against a state, which is left as it was:
        what :meth:`observe_entity` answers, without the new state. The card stage reads
        the other entities' features this way from its local replica of their states."""
        return self._one(entity, record, state, keep=False).feature_dict(0)

    def observe_many(
        self,
        entity: str,
        records: Sequence[Mapping[str, Any]],
        slots: Sequence[Hashable | None],
        states: Mapping[Hashable, bytes | None],
        keep: bool = True,
        features: bool = True,
    ) -> EntityBatch:
        """:meth:`observe_entity` of a whole batch in one compiled call. `slots[i]` names the
        state record i reads and updates (None: no key, NaN features, no state), `states` the
        state of each slot before the batch; records of one slot follow each other in batch
        order. `keep` False: each record is read against the states as given
        (:meth:`features_against`); `features` False: none computed (:meth:`add_event`).
        A record or state that cannot be used is named in `errors` and changes nothing."""
        return _observe_batch(self.plan.entities[entity], records, slots, states, keep, features)

    def transaction_features(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """The per-transaction features (calendar, values, categories, distance, age)."""
        columns, errors = self._transaction_values([record])
        if errors[0] is not None:
            raise errors[0]
        return {name: values[0] for name, values in columns.items()}

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

    def assemble_many(
        self, records: Sequence[Mapping[str, Any]], entity_parts: Sequence[EntityBatch]
    ) -> list[Features | RecordError | packed.StateError]:
        """Each record's feature dict (:meth:`assemble`) from every entity's part of the
        batch (:meth:`observe_many`) and its transaction features, computed here for the
        whole batch at once; for a record that a part could not use, or whose transaction
        features cannot be computed, the error instead."""
        outcome: list[Any] = [None] * len(records)
        for part in entity_parts:
            for row, error in enumerate(part.errors):
                if error is not None and outcome[row] is None:
                    outcome[row] = error
        usable = [row for row, error in enumerate(outcome) if error is None]
        columns, errors = self._transaction_values([records[row] for row in usable])
        for row, error in zip(usable, errors):
            outcome[row] = error
        computed = [row for row in usable if outcome[row] is None]
        if not computed:
            return outcome
        at = np.asarray(computed, dtype=np.int64)
        values: dict[str, list[Any]] = {}
        for part in entity_parts:
            for f, name in enumerate(part.names):
                values[name] = part.features[f, at].tolist()
        for name, column in columns.items():
            values[name] = column.tolist()
        for name in self.plan.text_features:
            values[name] = [None if is_missing(v) else v for v in values[name]]
        names = self.plan.names
        for row, row_values in zip(computed, zip(*(values[n] for n in names))):
            outcome[row] = dict(zip(names, row_values))
        return outcome

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

    def _transaction_values(
        self, records: Sequence[Mapping[str, Any]]
    ) -> tuple[dict[str, np.ndarray], list[RecordError | None]]:
        """The transaction features of records, as columns over the records without an
        error, and each record's error (None: its values are in the columns)."""
        errors: list[RecordError | None] = [None] * len(records)
        rows: list[list[Any]] = []
        stamps: list[int] = []
        for i, record in enumerate(records):
            try:
                row = [_column(record, c) for c in self._columns]
                stamp = _time(record)
            except RecordError as exc:
                errors[i] = exc
                continue
            rows.append(row)
            stamps.append(stamp)
        features = self.plan.transaction_features
        try:
            by_column = zip(*rows) if rows else ([] for _ in self._columns)
            columns = {c: np.array(v) for c, v in zip(self._columns, by_column)}
            return transaction.evaluate(features, columns, np.array(stamps, dtype=np.int64)), errors
        except RecordError:
            pass
        # One record's value spoils the batch's column: find it, record by record.
        good = [i for i, error in enumerate(errors) if error is None]
        answers: list[dict[str, np.ndarray]] = []
        for i, row, stamp in zip(good, rows, stamps):
            try:
                columns = {c: np.array([v]) for c, v in zip(self._columns, row)}
                answers.append(
                    transaction.evaluate(features, columns, np.array([stamp], dtype=np.int64))
                )
            except RecordError as exc:
                errors[i] = exc
        names = [f.name for f in features]
        joined = {
            n: np.concatenate([a[n] for a in answers]) if answers else np.array([]) for n in names
        }
        return joined, errors

    def _one(
        self,
        entity: str,
        record: Mapping[str, Any],
        state: bytes | None,
        keep: bool = True,
        features: bool = True,
    ) -> EntityBatch:
        """:meth:`observe_many` of one record (its error raised)."""
        one = self.observe_many(entity, [record], [0], {0: state}, keep, features)
        if one.errors[0] is not None:
            raise one.errors[0]
        return one

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


# What the compiled call answers for each event besides the features.
OK, NOT_A_STATE, SPANS_TOO_LONG = 0, 1, 2


@dataclass(frozen=True)
class EntityBatch:
    """One entity's part of a batch of records (:meth:`StreamEngine.observe_many`)."""

    names: tuple[str, ...]  # the entity's features, in its plan's order
    features: np.ndarray  # (features, records): NaN where no key, an error or not computed
    # slot -> its state after the batch, for each slot an event was added to (with keep): a
    # redelivered one's too, unchanged, so that its state is written and sent on again
    # (should the first write have been lost before its changelog record was sent).
    states: dict[Hashable, bytes]
    lateness: np.ndarray  # per record: seconds behind the state's newest event (int64)
    errors: list[Exception | None]  # per record: why it could not be used (it changed nothing)
    keyed: np.ndarray  # per record: it has the entity's key (bool)

    def feature_dict(self, row: int) -> dict[str, Any]:
        return dict(zip(self.names, self.features[:, row].tolist()))

    def state_after(self, row: int, slot: Hashable, before: bytes | None) -> bytes | None:
        """The slot's state after the batch (None: record `row` has no key, so no state)."""
        return self.states.get(slot, before) if self.keyed[row] else None


@dataclass
class _EventBatch:
    """The compiled call's inputs: the usable records of a batch as arrays, and each one's
    starting state: its slot's state as given (`buffer[starts[i]:starts[i+1]]`), or for a
    slot's later records the state the slot's previous record left (`previous`)."""

    rows: list[int]  # the record each event is
    keyed: list[int]  # the records with the entity's key (an error or not)
    errors: list[Exception | None]  # per record
    ts: np.ndarray
    tx_hashes: np.ndarray
    numeric: np.ndarray  # (events, numeric fields)
    keys: np.ndarray  # (events, key fields)
    buffer: np.ndarray
    starts: np.ndarray
    previous: np.ndarray  # per event: the event before it in its slot, or -1
    last: np.ndarray  # per event: the last of its slot in the batch

    @property
    def count(self) -> int:
        return len(self.rows)

    @classmethod
    def of(
        cls,
        plan: EntityPlan,
        records: Sequence[Mapping[str, Any]],
        slots: Sequence[Hashable | None],
        states: Mapping[Hashable, bytes | None],
    ) -> _EventBatch:
        rows: list[int] = []
        keyed: list[int] = []
        errors: list[Exception | None] = [None] * len(records)
        ts: list[int] = []
        hashes: list[int] = []
        numeric: list[list[float]] = []
        keys: list[list[int]] = []
        previous: list[int] = []
        starting: list[bytes] = []
        latest: dict[Hashable, int] = {}
        key_fields = tuple(zip(plan.key_fields, plan.key_fields_numeric))
        for row, (record, slot) in enumerate(zip(records, slots)):
            try:
                if slot is None or is_missing(_column(record, plan.column)):
                    continue  # no key: NaN features, no state (StreamEngine.keys)
                keyed.append(row)
                event_ts = _time(record)
                tx_hash = id_hash(_column(record, "transaction_id"))
                event_numeric = [_number(record, f) for f in plan.numeric_fields]
                event_keys = [hash_value(_column(record, f), n) for f, n in key_fields]
            except ValueError as exc:  # RecordError, or a missing transaction id
                errors[row] = exc if isinstance(exc, RecordError) else RecordError(str(exc))
                continue
            before = latest.get(slot)
            previous.append(-1 if before is None else before)
            starting.append((states.get(slot) or b"") if before is None else b"")
            latest[slot] = len(rows)
            rows.append(row)
            ts.append(event_ts)
            hashes.append(tx_hash)
            numeric.append(event_numeric)
            keys.append(event_keys)
        count = len(rows)
        last = np.zeros(count, dtype=np.bool_)
        last[list(latest.values())] = True
        starts = np.zeros(count + 1, dtype=np.int64)
        np.cumsum([len(b) for b in starting], out=starts[1:])
        return cls(
            rows,
            keyed,
            errors,
            np.array(ts, dtype=np.int64),
            np.array(hashes, dtype=np.uint64),
            np.array(numeric, dtype=np.float64).reshape(count, len(plan.numeric_fields)),
            np.array(keys, dtype=np.uint64).reshape(count, len(plan.key_fields)),
            np.frombuffer(b"".join(starting), dtype=np.uint8),
            starts,
            np.array(previous, dtype=np.int64),
            last,
        )


def _observe_batch(
    plan: EntityPlan,
    records: Sequence[Mapping[str, Any]],
    slots: Sequence[Hashable | None],
    states: Mapping[Hashable, bytes | None],
    keep: bool = True,
    features: bool = True,
) -> EntityBatch:
    """StreamEngine.observe_many for one entity's plan."""
    batch = _EventBatch.of(plan, records, slots, states)
    out = np.full((len(plan.features), len(records)), np.nan)
    lateness = np.zeros(len(records), dtype=np.int64)
    new_states: dict[Hashable, bytes] = {}
    if batch.count:
        program = plan.program
        computed = np.empty((len(plan.features), batch.count), dtype=np.float64)
        status, late, changed, last_states, last_offsets = _observe_many(
            batch.buffer,
            batch.starts,
            batch.previous,
            batch.last,
            plan.layout,
            packed.columns(plan),
            plan.horizon,
            keep,
            features,
            (program.slots, program.features, program.default, program.windows, plan.labels),
            batch.ts,
            batch.tx_hashes,
            batch.numeric,
            batch.keys,
            computed,
        )
        rows = np.asarray(batch.rows, dtype=np.int64)
        lateness[rows] = late
        for j, row in enumerate(batch.rows):
            if status[j] == NOT_A_STATE:
                before = states.get(slots[row])
                batch.errors[row] = packed.StateError(packed.refusal(plan, before or b""))
            elif status[j] == SPANS_TOO_LONG:
                batch.errors[row] = packed.StateError(
                    f"{plan.name} state: events span more than 136 years"
                )
        if features:
            good = rows[status == OK]
            out[:, good] = computed[:, status == OK]
        for j in np.flatnonzero(batch.last).tolist():
            if changed[j]:
                new_states[slots[batch.rows[j]]] = last_states[
                    last_offsets[j] : last_offsets[j + 1]
                ].tobytes()
    keyed = np.zeros(len(records), dtype=np.bool_)
    keyed[batch.keyed] = True
    return EntityBatch(plan.feature_names, out, new_states, lateness, batch.errors, keyed)


def _compile(entity: EntityPlan) -> None:
    """Compiles the entity's compiled code, or loads it from numba's cache (seconds the first
    time on a machine, a fraction of one after), on made-up events: a worker pays for it
    when it starts, not at its first event."""
    record: dict[str, Any] = {"ts": 1, "transaction_id": "a", entity.column: 1}
    record.update(dict.fromkeys(entity.numeric_fields, 1.0))
    record.update(
        {f: 1 if n else "k" for f, n in zip(entity.key_fields, entity.key_fields_numeric)}
    )
    later = {**record, "ts": 3, "transaction_id": "b"}
    late = {**record, "ts": 0, "transaction_id": "c"}  # a late event: the decoded state sorted
    first = _observe_batch(entity, [record, later], ["k", "k"], {})
    if any(first.errors):
        raise AssertionError(f"compiling {entity.name}: {first.errors}")
    state = first.states["k"]
    _observe_batch(entity, [late], ["k"], {"k": state})
    _observe_batch(entity, [late], ["k"], {"k": state}, keep=False)
    _observe_batch(entity, [late], ["k"], {"k": state}, features=False)
    if entity.labels:
        labelled = packed.with_label(packed.decode(entity, state), 1, 1, 1, True)
        packed.encode(entity, packed.pruned(labelled, entity.horizon))


@numba.njit(cache=True, nogil=True)
def _observe_many(
    buffer,
    starts,
    previous,
    last,
    layout,
    width,
    horizon,
    keep,
    features_wanted,
    program,
    event_ts,
    tx_hashes,
    numeric,
    keys,
    out,
):
    """Each event in turn against its slot's state (_observe_packed): (status, lateness,
    whether its slot's state is to be written after the batch (changed, or a redelivery),
    per event; the states after each slot's last event end to end, and where each starts).
    Features into `out` (features, events)."""
    count = event_ts.size
    status = np.zeros(count, np.int64)
    lateness = np.zeros(count, np.int64)
    changed = np.zeros(count, np.bool_)
    after = List()  # the state after each event
    column = np.empty((out.shape[0], 1), np.float64)
    for i in range(count):
        if previous[i] >= 0:
            raw = after[previous[i]]
        else:
            raw = buffer[starts[i] : starts[i + 1]].copy()
        status[i], lateness[i], appended, blob = _observe_packed(
            raw,
            layout,
            width,
            horizon,
            keep,
            features_wanted,
            program,
            event_ts[i],
            tx_hashes[i],
            numeric[i],
            keys[i],
            column,
        )
        if status[i] == OK and appended and keep:
            after.append(blob)
            changed[i] = True
        else:
            after.append(raw)
            # A redelivery leaves the state as it is, but it is written again (see
            # EntityBatch.states); a refused event changes nothing.
            redelivered = status[i] == OK and keep
            changed[i] = redelivered or (previous[i] >= 0 and changed[previous[i]])
        if features_wanted:
            out[:, i] = column[:, 0]
    total = 0
    for i in range(count):
        if last[i]:
            total += after[i].size
    states = np.empty(total, np.uint8)
    offsets = np.zeros(count + 1, np.int64)
    position = 0
    for i in range(count):
        offsets[i] = position
        if last[i]:
            states[position : position + after[i].size] = after[i]
            position += after[i].size
        offsets[i + 1] = position
    return status, lateness, changed, states, offsets


@numba.njit(cache=True, nogil=True)
def _observe_packed(
    raw,
    layout,
    width,
    horizon,
    keep,
    features_wanted,
    program,
    event_ts,
    tx_hash,
    numeric,
    keys,
    out,
):
    """One event against one state's bytes: decode, one _step, prune and encode: (status,
    lateness, appended, new state's bytes; empty unless appended and `keep`). `program`:
    the plan's compiled arrays (slots, features, default, windows, labels kept), as _step
    takes them."""
    slots, features, default, window_table, labels_kept = program
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


__all__ = ["EntityBatch", "RecordError", "StateSize", "StreamEngine"]
