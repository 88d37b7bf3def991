"""The store's rules, lists and audit log (mixed into repository.Store).

A change never overwrites: a rule edit or state move adds a version row, a list update a
list version, and each writes its audit entry in the same transaction. The newest version
is the rule (or list) as it stands. The state moves themselves are checked by
models/rules/lifecycle.py.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, and_, func, select
from sqlalchemy.orm import Session

from aegis_app.serving.store.models import (
    TRANSACTION_COLUMNS,
    AuditRow,
    DecisionRow,
    ListVersionRow,
    RuleRow,
    RuleVersionRow,
)
from models.rules.lifecycle import check_edit, check_move
from models.rules.rule import DRAFT

RULE_SPEC = ("expression", "action", "priority", "reason")
BACKTEST_BATCH = 2000


class RuleChanges:
    """Rules, lists and the audit log; needs the Store's `_read` and `_write` sessions."""

    def _read(self) -> AbstractContextManager[Session]:  # pragma: no cover - Store's
        raise NotImplementedError

    def _write(self) -> AbstractContextManager[Session]:  # pragma: no cover - Store's
        raise NotImplementedError

    # ------------------------------------------------------------------ rules

    def create_rule(self, spec: Mapping[str, Any], actor: str, note: str | None = None) -> dict:
        """A new rule in draft (spec: expression, action, priority, reason); version 1."""
        now = datetime.now(UTC)
        with self._write() as session:
            rule = RuleRow(created_at=now, created_by=actor)
            session.add(rule)
            session.flush()  # gives the id
            row = _version_row(rule.id, 1, DRAFT, spec, actor, now, note)
            session.add(row)
            _audit(session, actor, "rule.create", f"rule:{rule.id}", note, _columns(row), now)
            return _columns(row)

    def edit_rule(
        self, rule_id: int, spec: Mapping[str, Any], actor: str, note: str | None = None
    ) -> dict | None:
        """A new draft version with `spec` (None: no such rule); LifecycleError when the
        rule's state does not allow edits."""
        now = datetime.now(UTC)
        with self._write() as session:
            current = _newest(session, rule_id, lock=True)
            if current is None:
                return None
            check_edit(current.state)
            row = _version_row(rule_id, current.version + 1, DRAFT, spec, actor, now, note)
            session.add(row)
            _audit(session, actor, "rule.edit", f"rule:{rule_id}", note, _columns(row), now)
            return _columns(row)

    def move_rule(
        self, rule_id: int, state: str, actor: str, note: str | None = None
    ) -> tuple[dict, bool] | None:
        """(the rule's newest version, whether it moved) after asking it to be in `state`;
        a rule already there is left as it is. None: no such rule; LifecycleError when
        its state does not allow the move."""
        now = datetime.now(UTC)
        with self._write() as session:
            current = _newest(session, rule_id, lock=True)
            if current is None:
                return None
            if not check_move(current.state, state):
                return _columns(current), False
            spec = {name: getattr(current, name) for name in RULE_SPEC}
            row = _version_row(rule_id, current.version + 1, state, spec, actor, now, note)
            session.add(row)
            _audit(session, actor, f"rule.{state}", f"rule:{rule_id}", note, _columns(row), now)
            return _columns(row), True

    def get_rule(self, rule_id: int) -> dict | None:
        with self._read() as session:
            row = _newest(session, rule_id)
            return None if row is None else _columns(row)

    def rule_history(self, rule_id: int) -> list[dict]:
        """Every version of a rule, oldest first."""
        query = (
            select(RuleVersionRow)
            .where(RuleVersionRow.rule_id == rule_id)
            .order_by(RuleVersionRow.version)
        )
        with self._read() as session:
            return [_columns(row) for row in session.scalars(query)]

    def list_rules(self, state: str | None = None) -> list[dict]:
        """The newest version of every rule (or of those in `state`), by rule id."""
        query = _newest_of_each(RuleVersionRow, RuleVersionRow.rule_id)
        if state is not None:
            query = query.where(RuleVersionRow.state == state)
        with self._read() as session:
            return [
                _columns(row) for row in session.scalars(query.order_by(RuleVersionRow.rule_id))
            ]

    # ------------------------------------------------------------------ lists

    def put_list(self, name: str, items: list[str], actor: str, note: str | None = None) -> dict:
        """A new version of list `name` holding `items` (deduplicated, sorted)."""
        now = datetime.now(UTC)
        values = sorted(set(items))
        with self._write() as session:
            latest = session.scalar(
                select(func.max(ListVersionRow.version)).where(ListVersionRow.name == name)
            )
            previous = set(_list_items(session, name, latest)) if latest else set()
            row = ListVersionRow(
                name=name,
                version=(latest or 0) + 1,
                items=values,
                changed_by=actor,
                changed_at=now,
                note=note,
            )
            session.add(row)
            details = {
                "version": row.version,
                "size": len(values),
                "added": len(set(values) - previous),
                "removed": len(previous - set(values)),
            }
            _audit(session, actor, "list.put", f"list:{name}", note, details, now)
            return _list(row)

    def get_list(self, name: str) -> dict | None:
        query = (
            select(ListVersionRow)
            .where(ListVersionRow.name == name)
            .order_by(ListVersionRow.version.desc())
            .limit(1)
        )
        with self._read() as session:
            row = session.scalar(query)
            return None if row is None else _list(row)

    def list_summaries(self) -> list[dict]:
        """Every list as it stands, by name, without its items: name, version, size (how
        many items), changed_by, changed_at, note."""
        query = _newest_of_each(ListVersionRow, ListVersionRow.name)
        with self._read() as session:
            return [
                {**_columns(row, skip=("items",)), "size": len(row.items or [])}
                for row in session.scalars(query.order_by(ListVersionRow.name))
            ]

    def list_names(self) -> list[str]:
        with self._read() as session:
            query = select(ListVersionRow.name).distinct().order_by(ListVersionRow.name)
            return list(session.scalars(query))

    def list_items(self) -> dict[str, frozenset[str]]:
        """Every list as it stands: name -> items (what rules read)."""
        out = {}
        for name in self.list_names():
            found = self.get_list(name)
            if found is not None:
                out[name] = frozenset(found["items"])
        return out

    # ------------------------------------------------------------------ audit

    def audit(
        self,
        actor: str,
        action: str,
        target: str,
        note: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """One audit entry for a change recorded elsewhere (an analyst's label)."""
        with self._write() as session:
            _audit(session, actor, action, target, note, details or {}, datetime.now(UTC))

    def audit_log(self, limit: int = 100, target: str | None = None) -> list[dict]:
        """The newest audit entries first (of one target, e.g. "rule:3", when given)."""
        query = select(AuditRow).order_by(AuditRow.id.desc()).limit(limit)
        if target is not None:
            query = query.where(AuditRow.target == target)
        with self._read() as session:
            return [_columns(row) for row in session.scalars(query)]

    # ------------------------------------------------------------------ backtest

    def backtest_rows(self, start: str, end: str, batch: int = BACKTEST_BATCH) -> Iterator[dict]:
        """Stored decisions with event time in [start, end), oldest first, read a batch at
        a time (a backtest may cover millions): what a rule reads and the stored action."""
        columns = (*TRANSACTION_COLUMNS, DecisionRow.features, DecisionRow.action)
        after: tuple[str, str] | None = None
        while True:
            query = select(*columns).where(
                DecisionRow.tx_datetime >= start, DecisionRow.tx_datetime < end
            )
            if after is not None:
                query = query.where(
                    (DecisionRow.tx_datetime > after[0])
                    | and_(
                        DecisionRow.tx_datetime == after[0],
                        DecisionRow.transaction_id > after[1],
                    )
                )
            query = query.order_by(DecisionRow.tx_datetime, DecisionRow.transaction_id)
            with self._read() as session:
                rows = [dict(row._mapping) for row in session.execute(query.limit(batch))]
            yield from rows
            if len(rows) < batch:
                return
            after = (rows[-1]["tx_datetime"], rows[-1]["transaction_id"])


def _newest(session: Session, rule_id: int, lock: bool = False) -> RuleVersionRow | None:
    query = (
        select(RuleVersionRow)
        .where(RuleVersionRow.rule_id == rule_id)
        .order_by(RuleVersionRow.version.desc())
        .limit(1)
    )
    if lock:
        # Two changes to one rule wait for each other (PostgreSQL; SQLite writes one at
        # a time anyway); the primary key refuses a duplicate version regardless.
        session.scalar(select(RuleRow.id).where(RuleRow.id == rule_id).with_for_update())
    return session.scalar(query)


def _version_row(
    rule_id: int,
    version: int,
    state: str,
    spec: Mapping[str, Any],
    actor: str,
    at: datetime,
    note: str | None,
) -> RuleVersionRow:
    return RuleVersionRow(
        rule_id=rule_id,
        version=version,
        state=state,
        expression=spec["expression"],
        action=spec["action"],
        priority=int(spec["priority"]),
        reason=spec["reason"],
        changed_by=actor,
        changed_at=at,
        note=note,
    )


def _columns(row: Any, skip: tuple[str, ...] = ()) -> dict:
    """A row as a plain dict of its columns (but those in `skip`)."""
    return {
        column.key: getattr(row, column.key)
        for column in row.__table__.columns
        if column.key not in skip
    }


def _newest_of_each(row_type: Any, key: Any) -> Select:
    """The newest version row of each rule (or list): `row_type`'s rows whose version is
    the highest of their `key`."""
    newest = select(key.label("key"), func.max(row_type.version).label("version"))
    newest = newest.group_by(key).subquery()
    return select(row_type).join(
        newest, and_(key == newest.c.key, row_type.version == newest.c.version)
    )


def _list_items(session: Session, name: str, version: int) -> list[str]:
    row = session.get(ListVersionRow, (name, version))
    return list(row.items) if row is not None else []


def _list(row: ListVersionRow) -> dict:
    return {**_columns(row), "items": list(row.items)}


def _audit(
    session: Session,
    actor: str,
    action: str,
    target: str,
    note: str | None,
    details: Mapping[str, Any],
    at: datetime,
) -> None:
    session.add(
        AuditRow(
            at=at,
            actor=actor,
            action=action,
            target=target,
            note=note,
            details=_json_details(details),
        )
    )


def _json_details(details: Mapping[str, Any]) -> dict:
    """Details as JSON keeps them (times as ISO text)."""
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in details.items()}
