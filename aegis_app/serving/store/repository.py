"""The store's repository: idempotent decision upserts, alert queries, labels.

Every method opens its own short transaction and returns plain dicts, so callers (the
sink, the API's thread pool) never share sessions. Methods are synchronous; async code
calls them through a thread (asyncio.to_thread / Starlette's run_in_threadpool).
"""

from __future__ import annotations

import base64
import binascii
import importlib.util
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, and_, case, create_engine, event, func, or_, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from aegis_app.core.codec import json_safe
from aegis_app.core.labels import MAX_ID_CHARS
from aegis_app.core.records import format_datetime, parse_datetime
from aegis_app.serving.store.models import (
    LABELLED,
    OPEN,
    TRANSACTION_COLUMNS,
    DecisionRow,
    DecisionRuleHitRow,
    KinesisCheckpointRow,
    LabelRow,
)
from aegis_app.serving.store.rules import RuleChanges

MIGRATIONS = Path(__file__).parent / "migrations"
MAX_PAGE = 500
# Rows per INSERT statement (19 bound parameters each; SQLite allows 32,766 per statement).
UPSERT_CHUNK = 500
DECISION_FIELDS = (
    "transaction_id",
    "card",
    "merchant",
    "amount",
    "ts",
    "tx_datetime",
    "fields",
    "entities",
    "action",
    "score",
    "scores",
    "reasons",
    "rules",
    "model_version",
    "features",
    "ingested_ms",
    "decided_at",
)


class StoreError(RuntimeError):
    """A decision that cannot be stored, or a store that cannot be reached."""


class BadCursor(ValueError):
    """A paging cursor that this store did not hand out."""


def make_engine(db_url: str, **kwargs: Any) -> Engine:
    """An engine for `db_url`; a SQLite file's parent directory is created."""
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        connect_args = {"check_same_thread": False, "timeout": 30}
        connect_args.update(kwargs.pop("connect_args", {}))
        if not database or database == ":memory:":
            kwargs.setdefault("poolclass", StaticPool)
        engine = create_engine(url, connect_args=connect_args, **kwargs)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection, _record) -> None:  # pragma: no cover - trivial
            cursor = dbapi_connection.cursor()
            if database and database != ":memory:":
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    if url.drivername == "postgresql" and importlib.util.find_spec("psycopg") is None:
        # SQLAlchemy 2.1 means psycopg 3 by "postgresql://"; psycopg2 is what we ship.
        url = url.set(drivername="postgresql+psycopg2")
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def alembic_config(connection=None, db_url: str | None = None) -> Config:
    """An Alembic Config built in code: the packaged migrations, no alembic.ini."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if db_url:
        config.set_main_option("sqlalchemy.url", db_url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision` (idempotent: an up-to-date store is left alone)."""
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), revision)


def parse_decided_at(value: object) -> datetime:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        moment = datetime.fromisoformat(value)
    elif isinstance(value, int | float):
        moment = datetime.fromtimestamp(value / 1000, tz=UTC)
    else:
        raise StoreError(f"decided_at: expected an ISO timestamp, got {value!r}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _id(value: object, name: str) -> str:
    """An id as the store keeps it: text of 1..MAX_ID_CHARS characters (an int is its text)."""
    if value is None:
        raise StoreError(f"decision not storable: {name}: missing")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise StoreError(f"decision not storable: {name}: expected text, got {value!r}")
    text = str(value)
    if not text or len(text) > MAX_ID_CHARS:
        raise StoreError(
            f"decision not storable: {name}: expected 1-{MAX_ID_CHARS} characters, got {len(text)}"
        )
    return text


def _keys(value: object, name: str) -> dict[str, str | None]:
    """Entity keys {entity name: key text or None}."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise StoreError(f"decision not storable: {name}: expected an object, got {value!r}")
    return {str(k): None if v is None else str(v) for k, v in value.items()}


def _field(decision: dict, name: str, convert: Callable[[Any], Any], required: bool = True) -> Any:
    """convert(decision[name]), or a StoreError naming the field."""
    value = decision.get(name)
    if value is None:
        if required:
            raise StoreError(f"decision not storable: {name}: missing")
        return None
    try:
        return convert(value)
    except (TypeError, ValueError, OverflowError) as exc:  # InvalidRecord is a ValueError
        raise StoreError(f"decision not storable: {name}: {exc}") from None


def _json_object(value: Any) -> dict:
    # NaN is not JSON (PostgreSQL refuses it): a missing value is stored as null.
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, got {value!r}")
    return json_safe(value)


def _event_time(decision: dict) -> tuple[int, str]:
    """(ts, tx_datetime): ts when given, else read from tx_datetime; stored as both, so
    tx_datetime is always 'YYYY-MM-DD HH:MM:SS' UTC (text order is time order)."""
    ts = _field(decision, "ts", int, required=False)
    name = "ts"
    if ts is None:
        ts, name = _field(decision, "tx_datetime", parse_datetime), "tx_datetime"
    try:
        return ts, format_datetime(ts)
    except (ValueError, OverflowError, OSError):
        raise StoreError(f"decision not storable: {name}: out of range") from None


def decision_row(decision: dict) -> dict:
    """The columns of one decision message (the JSON on aegis.decisions)."""
    if not isinstance(decision, dict):
        raise StoreError(f"decision not storable: expected an object, got {decision!r}")
    ts, tx_datetime = _event_time(decision)
    return {
        "transaction_id": _id(decision.get("transaction_id"), "transaction_id"),
        "card": _id(decision.get("card"), "card"),
        "merchant": _id(decision.get("merchant"), "merchant"),
        "amount": _field(decision, "amount", float),
        "ts": ts,
        "tx_datetime": tx_datetime,
        "fields": _field(decision, "fields", _json_object, required=False) or {},
        "entities": _keys(decision.get("entities"), "entities"),
        "action": _field(decision, "action", str),
        "score": _field(decision, "score", float),
        "scores": _field(decision, "scores", dict, required=False) or {},
        "reasons": _field(decision, "reasons", list, required=False) or [],
        "rules": _field(decision, "rules", _rule_hits, required=False) or [],
        "model_version": _field(decision, "model_version", str, required=False) or "",
        "features": _field(decision, "features", _json_object, required=False) or {},
        "ingested_ms": _field(decision, "ingested_ms", int, required=False),
        "decided_at": _field(decision, "decided_at", parse_decided_at),
    }


def _rule_hits(value: Any) -> list[dict]:
    """The decision's `rules`: a list of objects, each with an id."""
    if not isinstance(value, list) or not all(
        isinstance(hit, dict) and "id" in hit for hit in value
    ):
        raise ValueError("expected a list of rules, each with an id")
    return value


def hit_rows(row: dict) -> list[dict]:
    """The decision_rule_hits rows of one decision's columns: its matches of rules with a
    number (the rules table's); the rules file's checks are named, not numbered."""
    out = []
    for hit in row["rules"]:
        rule_id, version = hit.get("id"), hit.get("version")
        if (
            isinstance(rule_id, bool)
            or not isinstance(rule_id, int)
            or not isinstance(version, int)
        ):
            continue
        out.append(
            {
                "transaction_id": row["transaction_id"],
                "rule_id": rule_id,
                "version": version,
                "shadow": bool(hit.get("shadow")),
                "action": str(hit.get("action")),
                "day": row["tx_datetime"][:10],
                "decided_at": row["decided_at"],
            }
        )
    return list({h["rule_id"]: h for h in out}.values())  # one row per rule (the key)


@dataclass
class Page:
    items: list[dict]
    next_cursor: str | None


def encode_cursor(decided_at: datetime, transaction_id: str) -> str:
    raw = f"{decided_at.astimezone(UTC).isoformat()}|{transaction_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment, tx_id = raw.split("|", 1)  # the time has no "|"; an id may
        if not tx_id:
            raise ValueError("no transaction id")
        return parse_decided_at(moment), tx_id
    except (ValueError, UnicodeDecodeError, binascii.Error, StoreError):
        raise BadCursor("cursor: not a cursor from this API") from None


class Store(RuleChanges):
    """Decisions and labels in one SQL database (SQLite or PostgreSQL), and the rules,
    lists and audit log of aegis_app.serving.store.rules."""

    def __init__(
        self, db_url: str | None = None, *, engine: Engine | None = None, migrate: bool = True
    ) -> None:
        if engine is None:
            if db_url is None:
                raise ValueError("Store needs a db_url or an engine")
            engine = make_engine(db_url)
        self.engine = engine
        self.dialect = engine.dialect.name
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        # One shared connection (in-memory SQLite) must not be used by two threads at once.
        self._lock = threading.RLock() if isinstance(engine.pool, StaticPool) else None
        if migrate:
            with self._locked():
                upgrade(engine)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        if self._lock is None:
            yield
            return
        with self._lock:
            yield

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with self._locked(), self._sessions() as session:
            yield session

    @contextmanager
    def _write(self) -> Iterator[Session]:
        with self._locked(), self._sessions.begin() as session:
            yield session

    def close(self) -> None:
        self.engine.dispose()

    def ping(self) -> bool:
        """True if the database answers a trivial query."""
        try:
            with self._locked(), self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            return True
        except SQLAlchemyError:
            return False

    # ------------------------------------------------------------------ decisions

    def upsert_decisions(self, decisions: Iterable[dict]) -> int:
        """Insert or replace decisions by transaction id; returns the number of distinct ids.

        A redelivered or replayed decision replaces the earlier one (the last one wins)
        but keeps its alert status and label: it never creates a second row.
        """
        rows: dict[str, dict] = {}
        for decision in decisions:
            row = decision_row(decision)
            rows[row["transaction_id"]] = row  # one statement must not touch a row twice
        if not rows:
            return 0
        now = datetime.now(UTC)
        values = [{**row, "stored_at": now} for row in rows.values()]
        hits = [hit for row in rows.values() for hit in hit_rows(row)]
        with self._write() as session:
            for chunk in _chunks(values):
                self._upsert(session, chunk)
            # A redelivered decision's hits replace its earlier ones.
            hits_table = DecisionRuleHitRow.__table__
            for chunk in _chunks(list(rows)):
                session.execute(
                    hits_table.delete().where(hits_table.c.transaction_id.in_(list(chunk)))
                )
            for chunk in _chunks(hits):
                session.execute(hits_table.insert(), list(chunk))
        return len(rows)

    def _upsert(self, session: Session, values: list[dict]) -> None:
        table = DecisionRow.__table__
        if self.dialect in ("sqlite", "postgresql"):
            if self.dialect == "sqlite":
                from sqlalchemy.dialects.sqlite import insert
            else:
                from sqlalchemy.dialects.postgresql import insert
            for row in values:
                row["status"] = OPEN if row["action"] != "allow" else None
            stmt = insert(table).values(values)
            excluded = stmt.excluded
            updates = {name: excluded[name] for name in DECISION_FIELDS[1:]}
            updates["stored_at"] = excluded["stored_at"]
            updates["status"] = case(
                (table.c.label.is_not(None), LABELLED),
                (excluded["action"] != "allow", OPEN),
                else_=None,
            )
            session.execute(
                stmt.on_conflict_do_update(index_elements=["transaction_id"], set_=updates)
            )
            return
        for row in values:  # any other database: one merge per row, same outcome
            existing = session.get(DecisionRow, row["transaction_id"], with_for_update=True)
            if existing is None:
                status = OPEN if row["action"] != "allow" else None
                session.add(DecisionRow(**row, status=status))
                continue
            for name, value in row.items():
                setattr(existing, name, value)
            if existing.label is not None:
                existing.status = LABELLED
            else:
                existing.status = OPEN if row["action"] != "allow" else None

    def get_decision(self, transaction_id: str | int) -> dict | None:
        with self._read() as session:
            row = session.get(DecisionRow, str(transaction_id))
            return to_dict(row) if row is not None else None

    def count_decisions(self) -> int:
        with self._read() as session:
            return int(session.scalar(select(func.count()).select_from(DecisionRow)) or 0)

    def transaction_ids(self) -> list[str]:
        with self._read() as session:
            return list(session.scalars(select(DecisionRow.transaction_id)))

    def card_decisions(self, card: str | int, limit: int = 20) -> list[dict]:
        """A card's latest decisions, newest first."""
        query = (
            select(DecisionRow)
            .where(DecisionRow.card == str(card))
            .order_by(DecisionRow.decided_at.desc(), DecisionRow.transaction_id.desc())
            .limit(min(limit, MAX_PAGE))
        )
        with self._read() as session:
            return [to_dict(row) for row in session.scalars(query)]

    def list_decisions(
        self,
        *,
        actions: Sequence[str] | None = None,
        status: str | None = None,
        min_score: float | None = None,
        max_score: float | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        card: str | int | None = None,
        merchant: str | int | None = None,
        search: str | int | None = None,
        rule_id: int | None = None,
        shadow: bool | None = None,
        limit: int = 50,
        offset: int = 0,
        cursor: str | None = None,
    ) -> Page:
        """Decisions matching every given filter, newest first (decided_at, then id).
        `search`: the transaction id, card or merchant is exactly this text. `rule_id`:
        those the rule matched (`shadow`: only as a shadow rule, or only as an active
        one)."""
        limit = max(1, min(int(limit), MAX_PAGE))
        query = select(DecisionRow)
        if actions:
            query = query.where(DecisionRow.action.in_(list(actions)))
        if status is not None:
            query = query.where(DecisionRow.status == status)
        if min_score is not None:
            query = query.where(DecisionRow.score >= min_score)
        if max_score is not None:
            query = query.where(DecisionRow.score <= max_score)
        if since is not None:
            query = query.where(DecisionRow.decided_at >= since)
        if until is not None:
            query = query.where(DecisionRow.decided_at < until)
        if card is not None:
            query = query.where(DecisionRow.card == str(card))
        if merchant is not None:
            query = query.where(DecisionRow.merchant == str(merchant))
        if search is not None:
            # Exact matches only: each column has its index (a LIKE would read them all).
            wanted = str(search)
            query = query.where(
                or_(
                    DecisionRow.transaction_id == wanted,
                    DecisionRow.card == wanted,
                    DecisionRow.merchant == wanted,
                )
            )
        if rule_id is not None:
            hits = select(DecisionRuleHitRow.transaction_id).where(
                DecisionRuleHitRow.rule_id == int(rule_id)
            )
            if shadow is not None:
                hits = hits.where(DecisionRuleHitRow.shadow == shadow)
            query = query.where(DecisionRow.transaction_id.in_(hits))
        if cursor:
            at, tx_id = decode_cursor(cursor)
            query = query.where(
                or_(
                    DecisionRow.decided_at < at,
                    and_(DecisionRow.decided_at == at, DecisionRow.transaction_id < tx_id),
                )
            )
        query = query.order_by(DecisionRow.decided_at.desc(), DecisionRow.transaction_id.desc())
        query = query.offset(max(0, int(offset))).limit(limit + 1)
        with self._read() as session:
            rows = list(session.scalars(query))
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = (
            encode_cursor(rows[-1].decided_at, rows[-1].transaction_id) if more and rows else None
        )
        return Page([to_dict(row) for row in rows], next_cursor)

    def rule_hits_per_day(
        self, rule_id: int, start: str | None = None, end: str | None = None
    ) -> list[dict]:
        """A rule's live matches per event day (UTC, 'YYYY-MM-DD', in [start, end) when
        given), version and mode: [{"day", "version", "shadow", "hits"}], oldest first."""
        table = DecisionRuleHitRow
        query = select(table.day, table.version, table.shadow, func.count().label("hits")).where(
            table.rule_id == int(rule_id)
        )
        if start is not None:
            query = query.where(table.day >= start)
        if end is not None:
            query = query.where(table.day < end)
        query = query.group_by(table.day, table.version, table.shadow).order_by(
            table.day, table.version, table.shadow
        )
        with self._read() as session:
            return [
                {"day": r.day, "version": r.version, "shadow": bool(r.shadow), "hits": r.hits}
                for r in session.execute(query)
            ]

    def rule_hit_totals(self) -> dict[int, dict]:
        """Every rule's live matches over all stored decisions, in one grouped query:
        {rule_id: {"hits_active", "hits_shadow", "last_hit_day"}} (rules never matched
        are absent)."""
        table = DecisionRuleHitRow
        query = select(
            table.rule_id,
            func.sum(case((table.shadow, 0), else_=1)).label("active"),
            func.sum(case((table.shadow, 1), else_=0)).label("shadow"),
            func.max(table.day).label("last_day"),
        ).group_by(table.rule_id)
        with self._read() as session:
            return {
                r.rule_id: {
                    "hits_active": int(r.active or 0),
                    "hits_shadow": int(r.shadow or 0),
                    "last_hit_day": r.last_day,
                }
                for r in session.execute(query)
            }

    # ------------------------------------------------------------------ labels

    def record_label(
        self,
        transaction_id: str | int,
        label: int,
        *,
        note: str | None = None,
        analyst: str | None = None,
        source: str = "analyst",
        at: datetime | None = None,
    ) -> dict | None:
        """Label a stored decision (None if there is none); keeps the label history, each
        label with the decision's card and entity keys. Returns the labelled decision."""
        at = at or datetime.now(UTC)
        transaction_id = str(transaction_id)
        with self._write() as session:
            row = session.get(DecisionRow, transaction_id, with_for_update=True)
            if row is None:
                return None
            row.label = int(label)
            row.label_note = note
            row.labelled_at = at
            row.labelled_by = analyst
            row.status = LABELLED
            session.add(
                LabelRow(
                    transaction_id=transaction_id,
                    label=int(label),
                    source=source,
                    note=note,
                    analyst=analyst,
                    known_at=at,
                    card=row.card,
                    entities=_present_keys(row.entities),
                )
            )
            session.flush()
            return to_dict(row)

    def add_stream_labels(self, labels: Iterable[dict]) -> int:
        """Store labels read from aegis.labels (transaction_id, label, source, known_at as a
        datetime, and optionally note, card, entities); one already stored with the same
        transaction, source and time is skipped, so a re-read topic adds nothing. Returns
        how many were new."""
        wanted: dict[tuple[str, str, datetime], dict] = {}
        for item in labels:
            known_at = item["known_at"].astimezone(UTC).replace(microsecond=0)
            wanted[(str(item["transaction_id"]), str(item["source"]), known_at)] = item
        if not wanted:
            return 0
        ids = sorted({key[0] for key in wanted})
        with self._write() as session:
            existing: set[tuple[str, str, datetime]] = set()
            for chunk in _chunks(ids):
                query = select(LabelRow.transaction_id, LabelRow.source, LabelRow.known_at).where(
                    LabelRow.transaction_id.in_(chunk)
                )
                existing.update((t, s, k.astimezone(UTC)) for t, s, k in session.execute(query))
            new = [key for key in wanted if key not in existing]
            session.add_all(_label_row(key, wanted[key]) for key in new)
        return len(new)

    def count_labels(self) -> int:
        with self._read() as session:
            return int(session.scalar(select(func.count()).select_from(LabelRow)) or 0)

    def actions(self, transaction_ids: Sequence[str | int]) -> dict[str, str]:
        """The stored action of each of these transactions (by id text)."""
        out: dict[str, str] = {}
        ids = [str(t) for t in transaction_ids]
        with self._read() as session:
            for chunk in _chunks(ids):
                query = select(DecisionRow.transaction_id, DecisionRow.action).where(
                    DecisionRow.transaction_id.in_(chunk)
                )
                out.update((t, a) for t, a in session.execute(query))
        return out

    def latest_tx_datetime(self) -> str | None:
        """The newest stored transaction's event time ('YYYY-MM-DD HH:MM:SS')."""
        with self._read() as session:
            return session.scalar(select(func.max(DecisionRow.tx_datetime)))

    def training_rows(self, start: str, end: str) -> list[dict]:
        """Decisions with event time in [start, end), oldest first: the transaction
        (transaction_id, card, merchant, amount, ts, tx_datetime, fields, entities), the
        features the stream computed for it, its score and the model version that scored
        it."""
        query = (
            select(
                *TRANSACTION_COLUMNS,
                DecisionRow.entities,
                DecisionRow.features,
                DecisionRow.score,
                DecisionRow.model_version,
            )
            .where(DecisionRow.tx_datetime >= start, DecisionRow.tx_datetime < end)
            .order_by(DecisionRow.tx_datetime, DecisionRow.transaction_id)
        )
        with self._read() as session:
            return [dict(row._mapping) for row in session.execute(query)]

    def labels_known(
        self, start: str, end: str, known_by: datetime | None = None
    ) -> dict[str, int]:
        """The latest label known by `known_by` (default: any stored) of each transaction
        with event time in [start, end), by transaction id."""
        query = (
            select(LabelRow.transaction_id, LabelRow.label)
            .join(DecisionRow, DecisionRow.transaction_id == LabelRow.transaction_id)
            .where(DecisionRow.tx_datetime >= start, DecisionRow.tx_datetime < end)
            .order_by(LabelRow.known_at, LabelRow.id)
        )
        if known_by is not None:
            query = query.where(LabelRow.known_at <= known_by)
        with self._read() as session:
            return {t: int(label) for t, label in session.execute(query)}

    def labels_for(self, transaction_id: str | int) -> list[dict]:
        """Every label of a transaction, oldest first."""
        query = select(LabelRow).where(LabelRow.transaction_id == str(transaction_id))
        with self._read() as session:
            return [
                {
                    "transaction_id": r.transaction_id,
                    "label": r.label,
                    "source": r.source,
                    "note": r.note,
                    "analyst": r.analyst,
                    "known_at": r.known_at,
                    "card": r.card,
                    "entities": dict(r.entities or {}),
                }
                for r in session.scalars(query.order_by(LabelRow.id))
            ]

    # ------------------------------------------------------------------ kinesis checkpoints

    def kinesis_checkpoints(self, stream_name: str) -> dict[str, dict]:
        """Every shard checkpoint of `stream_name`: {shard id: {sequence_number, started_at,
        finished}} (aegis_app.ingest)."""
        query = select(KinesisCheckpointRow).where(KinesisCheckpointRow.stream_name == stream_name)
        with self._read() as session:
            return {
                row.shard_id: {
                    "sequence_number": row.sequence_number,
                    "started_at": row.started_at,
                    "finished": bool(row.finished),
                }
                for row in session.scalars(query)
            }

    def save_kinesis_checkpoint(
        self,
        stream_name: str,
        shard_id: str,
        *,
        sequence_number: str | None = None,
        started_at: datetime | None = None,
        finished: bool = False,
    ) -> None:
        """Record progress in a shard. A value not given keeps the stored one, and a shard
        once finished stays finished (the bridge is the only writer of its stream's rows)."""
        now = datetime.now(UTC)
        with self._write() as session:
            key = (stream_name, shard_id)
            row = session.get(KinesisCheckpointRow, key, with_for_update=True)
            if row is None:
                row = KinesisCheckpointRow(stream_name=stream_name, shard_id=shard_id)
                row.finished = False
                session.add(row)
            if sequence_number is not None:
                row.sequence_number = sequence_number
            if started_at is not None:
                row.started_at = started_at
            row.finished = bool(row.finished) or finished
            row.updated_at = now

    # ------------------------------------------------------------------ drift

    def decisions_between(
        self, start: str | None = None, end: str | None = None, limit: int = 5000
    ) -> list[dict]:
        """Decisions whose event time is in [start, end) (either bound optional), newest
        event first: all of them, or when more than `limit` match, the newest and every
        k-th older one, so the sample spreads over the whole window in proportion to the
        traffic (hours of the day keep their weight). limit=1 gives the latest decision.

        Bounds are 'YYYY-MM-DD HH:MM:SS' (UTC), the form of every stored tx_datetime
        (aegis_app.core.records.format_datetime), so text order is time order. Returns only what
        drift monitoring reads: tx_datetime, score, model_version, features.
        """
        limit = max(1, int(limit))
        conditions = []
        if start is not None:
            conditions.append(DecisionRow.tx_datetime >= start)
        if end is not None:
            conditions.append(DecisionRow.tx_datetime < end)
        newest_first = (DecisionRow.tx_datetime.desc(), DecisionRow.transaction_id.desc())
        columns = (
            DecisionRow.tx_datetime,
            DecisionRow.score,
            DecisionRow.model_version,
            DecisionRow.features,
        )
        with self._read() as session:
            stride = 1
            if limit > 1:
                total = session.scalar(
                    select(func.count()).select_from(DecisionRow).where(*conditions)
                )
                stride = max(1, -(-int(total or 0) // limit))  # ceil(total / limit)
            if stride == 1:
                query = select(*columns).where(*conditions).order_by(*newest_first).limit(limit)
            else:
                ranked = (
                    select(
                        DecisionRow.transaction_id.label("tid"),
                        func.row_number().over(order_by=newest_first).label("rn"),
                    )
                    .where(*conditions)
                    .subquery()
                )
                query = (
                    select(*columns)
                    .join(ranked, ranked.c.tid == DecisionRow.transaction_id)
                    .where((ranked.c.rn - 1) % stride == 0)
                    .order_by(ranked.c.rn)
                    .limit(limit)
                )
            return [
                {
                    "tx_datetime": row.tx_datetime,
                    "score": row.score,
                    "model_version": row.model_version,
                    "features": row.features or {},
                }
                for row in session.execute(query)
            ]


def _chunks(items: Sequence, size: int = UPSERT_CHUNK) -> Iterator[Sequence]:
    """`items` in slices of `size`: bounded statements (SQLite caps bound parameters)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _present_keys(entities: dict | None) -> dict[str, str]:
    """The entity keys a label carries: those the transaction has (as in Label.entities)."""
    return {str(k): str(v) for k, v in (entities or {}).items() if v is not None}


def _label_row(key: tuple[str, str, datetime], item: dict) -> LabelRow:
    card = item.get("card")
    return LabelRow(
        transaction_id=key[0],
        label=int(item["label"]),
        source=key[1],
        note=item.get("note"),
        known_at=key[2],
        card=None if card is None else str(card),
        entities=_present_keys(item.get("entities")),
    )


def to_dict(row: DecisionRow) -> dict:
    data = {name: getattr(row, name) for name in DECISION_FIELDS}
    data.update(
        status=row.status,
        label=row.label,
        label_note=row.label_note,
        labelled_at=row.labelled_at,
        labelled_by=row.labelled_by,
        stored_at=row.stored_at,
    )
    return data
